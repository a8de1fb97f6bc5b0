//! Shared types of the webhooks system: identifiers, webhook documents and their validation,
//! hook definitions, Kazoo event parsing and payload building.
//!
//! Invariant: this crate performs no I/O and depends on no framework; everything here is a pure
//! function of its inputs, so every other crate can share it and test it cheaply.

pub mod attempt;
pub mod config;
pub mod couch;
pub mod errors;
pub mod event;
pub mod form;
pub mod hooks;
pub mod ids;
pub mod job;
pub mod notice;
pub mod notifications;
pub mod payload;
pub mod retry;
pub mod samples;
pub mod time;
pub mod trace;
pub mod webhook;
