//! `monitors-manager`: the MonitorsManager. It consumes config messages, diffs them per (chain,
//! config type), and supervises one task per monitorable; it knows nothing of any one chain.
