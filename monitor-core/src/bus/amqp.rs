//! The RabbitMQ bus (lapin). Being written; see issue #2.
