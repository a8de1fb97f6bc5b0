//! The router's integration tests, in one test binary: routing alone (the hook index and the
//! payloads, no I/O), and the running router on a bus and a store.

mod routing;
mod service;
