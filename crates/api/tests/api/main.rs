//! The API's integration tests, in one test binary (but for the logs: `tests/logs.rs`): the API
//! served in-process on 127.0.0.1 and driven over real HTTP, on SQLite and PostgreSQL, with the
//! in-process bus (and RabbitMQ where the broker's own limits matter).

mod accounts;
mod bus;
mod clients;
mod errors;
mod hooks;
/// Kazoo's accounts and hooks imported from its CouchDB.
mod import;
/// Kazoo mode: Kazoo's tokens and keys, CORS for Monster UI.
mod kazoo;
/// Kazoo mode: accounts copied from Crossbar and Kazoo's notices, account routes refused.
mod kazoo_accounts;
/// Kazoo mode: hook writes mirrored into Kazoo's CouchDB.
mod mirror;
/// Kazoo mode: the calls of Monster UI's webhooks app, replayed.
mod monster_ui;
mod openapi;
mod redelivery;
/// Who may do what: every route, caller and account.
mod tenants;
mod test_callout;

use serde_json::{Value, json};
use webhooks_test_support::app::TestApp;
use webhooks_test_support::bus::{Backend, connect, unique_prefix};
use webhooks_test_support::db::TestDatabase;

/// The hook most tests create.
fn hook_document() -> Value {
    json!({"name": "New Calls", "uri": "https://hooks.example.com/calls/new", "http_verb": "post",
           "hook": "channel_create", "retries": 3})
}

/// [`hook_document`] in its envelope.
fn hook_body() -> Value {
    json!({"data": hook_document()})
}

/// The path of the hooks of `account`, followed by `rest`.
fn path(account: &str, rest: &str) -> String {
    format!("/v2/accounts/{account}/webhooks{rest}")
}

/// An app refusing private targets, as deployed, taking bodies of the default 1 MiB.
async fn deployed_app() -> TestApp {
    let bus = connect(Backend::InProcess, &unique_prefix("test-api-hostile")).await;
    let mut settings = TestApp::settings();
    settings.allow_private_targets = false;
    settings.api.max_body_bytes = 1 << 20;
    TestApp::spawn_with(TestDatabase::sqlite().await, bus, settings).await
}
