//! `heartbeat`: manager and worker heartbeats, and the health checker that pings components and
//! stores their heartbeats in Redis.
