//! Helpers shared by the tests of every crate: test databases and buses, one test body run on
//! each database or bus ([`test_matrix!`]), accounts and hooks arranged in a store, the example
//! Kazoo messages, an API server on port 0 (feature `api`), a client that speaks Crossbar, a
//! webhook receiver that records what it is sent (or misbehaves), captured logs, a TCP proxy
//! that can cut a service off its database or broker, a RabbitMQ cluster of a test's own whose
//! nodes it stops and restarts, and Kazoo's side of Kazoo mode (its tokens, its account tree, a
//! Crossbar stand-in).

#[cfg(feature = "api")]
pub mod app;
pub mod bench;
pub mod bus;
pub mod couch;
pub mod db;
pub mod fixtures;
pub mod http;
pub mod kazoo;
pub mod logs;
mod matrix;
pub mod proxy;
pub mod rabbit_cluster;
pub mod receiver;
pub mod store;
