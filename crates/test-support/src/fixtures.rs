//! The example Kazoo messages of `crates/model/fixtures/amqp-events`, each with the hook it
//! fires, the job payload and the HTTP request it must become.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use webhooks_model::event::address;
use webhooks_model::ids::AccountId;

/// Every fixture as `(file name, fixture)`, by file name.
pub fn amqp_event_fixtures() -> Vec<(String, Value)> {
    // Every crate sits in `crates/`, next to the model's.
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/fixtures/amqp-events");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("fixtures directory")
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture readable");
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            (name, serde_json::from_str(&text).expect("fixture JSON"))
        })
        .collect()
}

/// The CHANNEL_CREATE fixture's body: a real inbound a-leg as Kazoo publishes it.
pub fn channel_create_body() -> Value {
    amqp_event_fixtures()
        .into_iter()
        .find(|(name, _)| name == "CHANNEL_CREATE.json")
        .map(|(_, fixture)| fixture["body"].clone())
        .expect("the CHANNEL_CREATE fixture")
}

/// `template` (a call event body) as call `call_id` of `account`, with the routing key a Kazoo
/// publisher gives it on `callevt`; payloads carry the Call-ID back as `call_id`.
pub fn call_event(template: &Value, account: &AccountId, call_id: &str) -> (String, Vec<u8>) {
    let mut body = template.clone();
    body["Call-ID"] = json!(call_id);
    body["Custom-Channel-Vars"]["Account-ID"] = json!(account);
    let (exchange, routing_key) = address(&body).expect("a Kazoo call event");
    assert_eq!(exchange, "callevt", "a call event");
    (routing_key, serde_json::to_vec(&body).expect("serialize"))
}
