//! Helpers shared by the tests of every crate: test databases, an API server on port 0 and a
//! client that speaks Crossbar.

pub mod app;
pub mod db;
pub mod http;
