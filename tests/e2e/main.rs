//! End-to-end: the `webhooks` binary started as operators start it, driven over real HTTP.

mod admin;
mod api;
mod delivery;
mod faults;
mod first_start;
mod kazoo;
mod process;
mod queues;
mod replicas;
mod test_callout;
mod traces;
