//! The API's integration tests, in one test binary (but for the logs: `tests/logs.rs`): the API
//! served in-process on 127.0.0.1 and driven over real HTTP, on SQLite and PostgreSQL, with the
//! in-process bus (and RabbitMQ where the broker's own limits matter).

mod bus;
mod openapi;
mod redelivery;
mod rest;
/// Who may do what: every route, caller and account.
mod tenants;
mod test_callout;
