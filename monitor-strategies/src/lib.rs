//! `monitor-strategies`: one strategy per PANIC monitor type, each turning a validated config into a
//! [`monitor_core::Monitor`]. Strategies know nothing of RabbitMQ, Redis or the manager.
