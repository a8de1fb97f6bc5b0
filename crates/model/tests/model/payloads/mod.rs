//! Payload building, filters and form encoding against the project's fixtures
//! (`crates/model/fixtures/amqp-events`) and the rules of docs/kazoo.md (hook types, per-hook
//! finishing, form encoding).
//!
//! The fixtures were written to Kazoo's behaviour and updated where this system deliberately
//! differs: channel payloads carry `request` (and so does the form body of `CHANNEL_CREATE`); the
//! form-encoding fixes change nothing in the fixtures themselves (no key needs escaping and no hook
//! URI has a query string), so their cases are tests of their own (`form_encoding`).

mod channel;
mod filters;
mod finishing;
mod fixtures;
mod form_encoding;
mod normalization;
mod notification_events;
mod object_events;
mod parking_and_messages;
mod sample_payloads;

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use webhooks_model::event::{
    ChannelEventName, EventError, EventKind, InboundUserField, KazooEvent, ObjectAction, address,
    call_event_routing_key, read_body, read_event,
};
use webhooks_model::form;
use webhooks_model::ids::AccountId;
use webhooks_model::notifications::{self, NOTIFICATION_TYPES};
use webhooks_model::payload::{
    Finishing, HookView, PayloadCompat, PayloadContext, ReservedCcvKeys, base_payload, finish_payload,
    merge_custom_data, modifiers_match, normalize_key, normalize_object,
};
use webhooks_model::samples;

const ACCOUNT_ID: &str = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d";

const RESELLER_ID: &str = "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2";

const CLUSTER_ID: &str = "0d4c8e2a6b1f5a9c3e7d2b6f0a4c8e1d";

/// One fixture file, read from disk so that a fixture added later is covered automatically.
struct Fixture {
    file: String,
    json: Value,
}

impl Fixture {
    fn load(file: &str) -> Self {
        let path = fixtures_dir().join(file);
        let text = std::fs::read_to_string(&path).expect("fixture readable");
        Self { file: file.to_owned(), json: serde_json::from_str(&text).expect("fixture is json") }
    }

    fn all() -> Vec<Self> {
        let mut files: Vec<String> = std::fs::read_dir(fixtures_dir())
            .expect("fixtures directory")
            .map(|entry| entry.expect("directory entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json"))
            .collect();
        files.sort();
        files.iter().map(|file| Self::load(file)).collect()
    }

    fn routing_key(&self) -> &str {
        self.json["routing_key"].as_str().expect("routing_key")
    }

    fn body(&self) -> &Value {
        &self.json["body"]
    }

    fn hook(&self) -> &Map<String, Value> {
        self.json["hook"].as_object().expect("hook object")
    }

    fn context(&self, key: &str) -> &str {
        self.json["context"][key].as_str().expect("context value")
    }

    fn event(&self) -> KazooEvent {
        KazooEvent::parse(self.routing_key(), self.body()).unwrap_or_else(|error| panic!("{}: {error}", self.file))
    }

    /// The payload the fixture's hook receives, built the way the router does.
    fn delivered_payload(&self) -> Map<String, Value> {
        let event = self.event();
        let reseller: AccountId = self.context("reseller_id").parse().expect("reseller id");
        let base = base_payload(&event, &PayloadContext::new(Some(&reseller)));
        let hook = HookView::from_document(self.hook()).expect("hook type");
        assert!(hook.accepts(&event), "{}: the fixture's hook must accept its event", self.file);
        finish_payload(&base, &hook, &Finishing::new(self.context("cluster_id"))).expect("no modifier rejects")
    }
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/amqp-events")
}

fn account(id: &str) -> AccountId {
    id.parse().expect("valid account id")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Exact equality including key order, at every level: `Map`'s own `==` ignores order, so the
/// comparison goes through the serialized text, which follows insertion order.
fn assert_same_json(actual: &Map<String, Value>, expected: &Value, context: &str) {
    let actual_text = serde_json::to_string_pretty(actual).expect("serializable");
    let expected_text = serde_json::to_string_pretty(expected).expect("serializable");
    assert_eq!(actual_text, expected_text, "{context}: payload differs (values or key order)");
}

fn channel_body(event_name: &str) -> Value {
    let mut body = Fixture::load("CHANNEL_DESTROY.json").body().clone();
    body["Event-Name"] = json!(event_name);
    body
}

fn parse(routing_key: &str, body: &Value) -> KazooEvent {
    KazooEvent::parse(routing_key, body).expect("event parses")
}

fn build(event: &KazooEvent) -> Map<String, Value> {
    base_payload(event, &PayloadContext::new(Some(&account(RESELLER_ID))))
}
