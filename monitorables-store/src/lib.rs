//! `monitorables-store`: the monitorable messages managers publish and the store that merges them
//! into Redis (one document per base chain) for PANIC's API.
