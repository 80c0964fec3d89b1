//! `monitorables-store`: what the monitors manager monitors, kept for PANIC's API and for people.
//!
//! Managers publish `{manager_name, sources: [{chain_id, chain_name, source_id, source_name}]}` on
//! the `monitorable` exchange with routing key `<base_chain>.<type>` (spec §6.1). This crate merges
//! those messages (spec §6.2) into one [`Document`] per base chain:
//!
//! ```json
//! {"<chain_id>": {"chain_name": "cosmoshub",
//!                 "systems": {"<source_id>": {"name": "…", "manager_names": ["…"]}},
//!                 "nodes": {}, "github_repos": {}, "dockerhub_repos": {}, "chains": {}}}
//! ```
//!
//! * [`document`]: the document types and [`merge`], the one pure implementation of the algorithm;
//! * [`MonitorablesStore`]: where documents live, with [`RedisStore`] (key
//!   `<namespace>:monitorables:<base_chain>`, JSON, atomic optimistic compare-and-set, survives Redis
//!   restarts through a reconnecting [`redis::aio::ConnectionManager`]) and [`MemoryStore`]; both
//!   pass one conformance suite (`tests/it/conformance.rs`);
//! * [`run_store_service`]: the service consuming `monitorable_store_input_queue`, acking a message
//!   only once it is written and sending a worker heartbeat after each success;
//! * [`show()`]: a text rendering of what is monitored.
//!
//! Entry points take a [`tokio_util::sync::CancellationToken`] for shutdown; nothing reads the
//! environment or installs a logger. Redis connections must be created inside a tokio runtime.

pub mod document;
pub mod memory;
pub mod redis_store;
pub mod service;
pub mod show;
pub mod store;

pub use document::{merge, ChainEntry, Document, SourceEntry, Sources};
pub use memory::MemoryStore;
pub use redis_store::{
    connection_manager, connection_manager_with_tls, RedisStore, DEFAULT_NAMESPACE,
};
pub use service::{run_store_service, ServiceError, StoreServiceSettings, COMPONENT_NAME};
pub use show::{render, show};
pub use store::{MonitorablesStore, StoreError};
