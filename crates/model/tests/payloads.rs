//! Payload building, filters and form encoding against the project's fixtures
//! (`crates/model/fixtures/amqp-events`) and the rules of docs/kazoo.md (hook types, per-hook
//! finishing, form encoding).
//!
//! The fixtures were written to Kazoo's behaviour and updated where this system deliberately
//! differs: channel payloads carry `request` (and so does the form body of `CHANNEL_CREATE`); the
//! form-encoding fixes change nothing in the fixtures themselves (no key needs escaping and no hook
//! URI has a query string), so their cases are unit tests below.

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use webhooks_model::event::{
    ChannelEventName, EventError, EventKind, InboundUserField, KazooEvent, ObjectAction, address,
    call_event_routing_key, read_body, read_event,
};
use webhooks_model::form;
use webhooks_model::hooks::HookType;
use webhooks_model::ids::AccountId;
use webhooks_model::notifications::{self, NOTIFICATION_TYPES};
use webhooks_model::payload::{
    HookView, PayloadContext, ReservedCcvKeys, base_payload, finish_payload, merge_custom_data, modifiers_match,
    normalize_key, normalize_object,
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
        finish_payload(&base, &hook, self.context("cluster_id")).expect("no modifier rejects")
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

mod fixtures {
    use super::*;

    #[test]
    fn every_fixture_is_covered() {
        let files: Vec<String> = Fixture::all().into_iter().map(|fixture| fixture.file).collect();
        assert_eq!(
            files,
            [
                "CHANNEL_ANSWER.json",
                "CHANNEL_BRIDGE.json",
                "CHANNEL_CREATE.json",
                "CHANNEL_DESTROY.json",
                "notification_voicemail_new.json",
                "object_doc_created_user.json",
                "object_doc_deleted_user.json",
                "object_doc_edited_user.json",
                "parking_PARK_PARKED.json",
            ]
        );
    }

    #[test]
    fn every_fixture_payload_matches_field_by_field_and_in_key_order() {
        for fixture in Fixture::all() {
            let payload = fixture.delivered_payload();
            let expected = fixture.json["expected_http_payload"].as_object().expect("expected payload");
            for (key, value) in expected {
                assert_eq!(payload.get(key), Some(value), "{}: field '{key}'", fixture.file);
            }
            for key in payload.keys() {
                assert!(expected.contains_key(key), "{}: unexpected field '{key}'", fixture.file);
            }
            assert_same_json(&payload, &fixture.json["expected_http_payload"], &fixture.file);
        }
    }

    #[test]
    fn every_form_body_and_get_url_matches_the_fixture() {
        let mut checked_bodies = 0;
        let mut checked_urls = 0;
        for fixture in Fixture::all() {
            let payload = fixture.delivered_payload();
            let request = &fixture.json["expected_http_request"];
            let uri = fixture.hook()["uri"].as_str().expect("uri");
            if let Some(body) = request.get("body").and_then(Value::as_str) {
                assert_eq!(form::encode(&payload), body, "{}: form body", fixture.file);
                checked_bodies += 1;
            }
            let url = request["url"].as_str().expect("url");
            if request["method"] == "GET" {
                assert_eq!(form::url_with_query(uri, &payload), url, "{}: GET url", fixture.file);
                checked_urls += 1;
            } else {
                assert_eq!(uri, url, "{}: POST/PUT go to the hook uri unchanged", fixture.file);
            }
        }
        // CHANNEL_CREATE and the three object fixtures are form-data; CHANNEL_BRIDGE is a GET.
        assert_eq!((checked_bodies, checked_urls), (4, 1));
    }

    #[test]
    fn every_fixture_names_its_account_and_hook_type() {
        for fixture in Fixture::all() {
            let event = fixture.event();
            assert_eq!(event.account_id, Some(account(fixture.context("account_id"))), "{}", fixture.file);
            assert_eq!(event.lookup_key().map(HookType::as_str), fixture.hook()["hook"].as_str(), "{}", fixture.file);
        }
    }

    #[test]
    fn channel_fixture_routing_keys_encode_the_call_id_like_kazoo() {
        for file in ["CHANNEL_ANSWER.json", "CHANNEL_BRIDGE.json", "CHANNEL_CREATE.json", "CHANNEL_DESTROY.json"] {
            let fixture = Fixture::load(file);
            let body = fixture.body();
            let expected = call_event_routing_key(
                body["Event-Name"].as_str().expect("event name"),
                body["Call-ID"].as_str().expect("call id"),
            );
            assert_eq!(fixture.routing_key(), expected, "{file}");
        }
    }

    #[test]
    fn channel_payloads_carry_the_wire_request_string_before_reseller_id() {
        for file in ["CHANNEL_ANSWER.json", "CHANNEL_CREATE.json", "CHANNEL_DESTROY.json"] {
            let fixture = Fixture::load(file);
            let payload = fixture.delivered_payload();
            assert_eq!(payload["request"], fixture.body()["Request"], "{file}");
            let keys: Vec<&str> = payload.keys().map(String::as_str).collect();
            let request = keys.iter().position(|key| *key == "request").expect("request present");
            assert_eq!(keys[request + 1], "reseller_id", "{file}");
        }
        let bridge = Fixture::load("CHANNEL_BRIDGE.json").delivered_payload();
        assert!(!bridge.contains_key("request"), "bridge events carry no Request");
    }

    #[test]
    fn attempt_hook_event_is_upper_case_for_channel_hooks_and_the_hook_type_otherwise() {
        let expectations = [
            ("CHANNEL_CREATE.json", "CHANNEL_CREATE"),
            ("CHANNEL_DESTROY.json", "CHANNEL_DESTROY"),
            ("object_doc_created_user.json", "object"),
            ("notification_voicemail_new.json", "notifications"),
            ("parking_PARK_PARKED.json", "parking"),
        ];
        for (file, expected) in expectations {
            let fixture = Fixture::load(file);
            let event = fixture.event();
            let hook_type = fixture.hook()["hook"].as_str().and_then(HookType::parse).expect("hook type");
            assert_eq!(event.attempt_hook_event(hook_type), expected, "{file}");
            assert_eq!(event.attempt_hook_event(HookType::All), "all", "{file}");
        }
    }
}

mod channel {
    use super::*;

    #[test]
    fn reading_only_the_fields_an_event_needs_gives_the_same_event() {
        for fixture in Fixture::all() {
            let bytes = serde_json::to_vec(fixture.body()).expect("JSON");
            let read = read_body(fixture.routing_key(), &bytes).expect("a JSON body");
            assert_eq!(
                KazooEvent::parse(fixture.routing_key(), &read),
                KazooEvent::parse(fixture.routing_key(), fixture.body()),
                "{}",
                fixture.file
            );
        }
        // A channel event leaves its other fields unread; any other message is read whole.
        let destroy = Fixture::load("CHANNEL_DESTROY.json");
        let read = read_body(destroy.routing_key(), &serde_json::to_vec(destroy.body()).expect("JSON")).expect("JSON");
        let (read, whole) = (read.as_object().expect("an object"), destroy.body().as_object().expect("an object"));
        assert!(read.len() < whole.len() && read.keys().all(|key| whole.contains_key(key)), "{read:?}");
        let parked = Fixture::load("parking_PARK_PARKED.json").body().clone();
        let bytes = serde_json::to_vec(&parked).expect("JSON");
        assert_eq!(read_body("call.PARK_PARKED.x", &bytes).expect("JSON"), parked);
        // The body is authoritative: one that says it is not a channel event is read whole.
        assert_eq!(read_body("call.CHANNEL_CREATE.x", &bytes).expect("JSON"), parked);
        assert!(read_body("call.CHANNEL_CREATE.x", b"{\"Call-ID\": ").is_err());
        assert_eq!(read_body("call.CHANNEL_CREATE.x", b"[1]").expect("JSON"), json!([1]));
    }

    #[test]
    fn an_event_without_a_routing_key_is_addressed_and_parsed_as_if_read_whole() {
        let mut originated = channel_body("CHANNEL_ANSWER");
        originated["Origination-Call-ID"] = json!("origination@10.0.0.1");
        let mut unique = channel_body("CHANNEL_CREATE");
        unique.as_object_mut().expect("an object").remove("Call-ID");
        unique["Unique-ID"] = json!("unique@10.0.0.1");
        let bodies = Fixture::all().into_iter().map(|fixture| fixture.body().clone()).chain([originated, unique]);
        for whole in bodies {
            let read = read_event(&serde_json::to_vec(&whole).expect("JSON")).expect("a JSON body");
            let expected = address(&whole);
            assert_eq!(address(&read), expected, "{whole}");
            if let Ok((_, routing_key)) = expected {
                assert_eq!(KazooEvent::parse(&routing_key, &read), KazooEvent::parse(&routing_key, &whole), "{whole}");
            }
        }
        // Only a body that says it is a channel event is read sparsely; nothing is implied.
        let create = Fixture::load("CHANNEL_CREATE.json").body().clone();
        let read = read_event(&serde_json::to_vec(&create).expect("JSON")).expect("JSON");
        assert!(read.as_object().expect("an object").len() < create.as_object().expect("an object").len());
        let mut unnamed = create.clone();
        unnamed.as_object_mut().expect("an object").remove("Event-Name");
        assert_eq!(read_event(&serde_json::to_vec(&unnamed).expect("JSON")).expect("JSON"), unnamed);
        assert_eq!(read_event(b"[1]").expect("JSON"), json!([1]));
        assert!(read_event(b"{\"Event-Name\": ").is_err());
    }

    #[test]
    fn numeric_strings_become_integers_and_numbers_become_strings() {
        let mut body = channel_body("CHANNEL_DESTROY");
        body["Duration-Seconds"] = json!("31");
        body["Ringing-Seconds"] = json!(" 6 ");
        body["Billing-Seconds"] = json!("25.0");
        body["Timestamp"] = json!("63877219280");
        body["Caller-ID-Number"] = json!(14_085_550_199_i64);
        body["Hangup-Code"] = json!(200);
        let payload = build(&parse("call.CHANNEL_DESTROY.x", &body));
        assert_eq!(payload["duration_seconds"], json!(31));
        assert_eq!(payload["ringing_seconds"], json!(6));
        assert_eq!(payload["billing_seconds"], json!(25));
        assert_eq!(payload["timestamp"], json!(63_877_219_280_i64));
        assert_eq!(payload["caller_id_number"], json!("14085550199"));
        assert_eq!(payload["hangup_code"], json!("200"));
    }

    #[test]
    fn unparseable_integers_and_empty_strings_are_left_out() {
        let mut body = channel_body("CHANNEL_DESTROY");
        body["Duration-Seconds"] = json!("long");
        body["Caller-ID-Name"] = json!("");
        body["From"] = Value::Null;
        let payload = build(&parse("call.CHANNEL_DESTROY.x", &body));
        assert!(!payload.contains_key("duration_seconds"));
        assert!(!payload.contains_key("caller_id_name"));
        assert!(!payload.contains_key("from"));
    }

    #[test]
    fn channel_disconnected_is_delivered_as_channel_destroy() {
        let event = parse("call.CHANNEL_DISCONNECTED.x", &channel_body("CHANNEL_DISCONNECTED"));
        assert_eq!(event.lookup_key(), Some(HookType::ChannelDestroy));
        assert_eq!(event.hook_event(), "CHANNEL_DESTROY");
        assert_eq!(build(&event)["hook_event"], json!("channel_destroy"));
    }

    #[test]
    fn other_call_events_are_ignored_not_malformed() {
        let error =
            KazooEvent::parse("call.CHANNEL_EXECUTE.x", &channel_body("CHANNEL_EXECUTE")).expect_err("not delivered");
        assert!(matches!(error, EventError::UnsupportedEvent { .. }));
        assert!(error.is_ignored());
    }

    #[test]
    fn a_call_event_without_call_id_is_malformed() {
        let mut body = channel_body("CHANNEL_CREATE");
        body.as_object_mut().expect("object").remove("Call-ID");
        let error = KazooEvent::parse("call.CHANNEL_CREATE.x", &body).expect_err("malformed");
        assert_eq!(error, EventError::MissingField("Call-ID"));
        assert!(!error.is_ignored());
    }

    #[test]
    fn the_routing_key_supplies_a_missing_envelope() {
        let mut body = channel_body("CHANNEL_ANSWER");
        let fields = body.as_object_mut().expect("object");
        fields.remove("Event-Category");
        fields.remove("Event-Name");
        let event = parse("call.CHANNEL_ANSWER.abc", &body);
        assert_eq!(event.lookup_key(), Some(HookType::ChannelAnswer));
    }

    #[test]
    fn resource_and_forwarding_flags_follow_the_ccvs() {
        let mut body = channel_body("CHANNEL_CREATE");
        let ccvs = body["Custom-Channel-Vars"].as_object_mut().expect("ccvs");
        ccvs.insert("Global-Resource".to_owned(), json!(true));
        ccvs.insert("Resource-ID".to_owned(), json!("9f8e7d6c5b4a39281706f5e4d3c2b1a0"));
        ccvs.insert("Emergency-Resource".to_owned(), json!("true"));
        ccvs.insert("Call-Forward".to_owned(), json!(true));
        let payload = build(&parse("call.CHANNEL_CREATE.x", &body));
        assert_eq!(payload["local_resource_used"], json!(false));
        assert!(!payload.contains_key("local_resource_id"), "global resources have no local id");
        assert_eq!(payload["emergency_resource_used"], json!(true));
        assert_eq!(payload["call_forwarded"], json!(true));

        let mut body = channel_body("CHANNEL_CREATE");
        body["Custom-Channel-Vars"].as_object_mut().expect("ccvs").remove("Call-Forward");
        body["Channel-Is-Loopback"] = json!(true);
        let payload = build(&parse("call.CHANNEL_CREATE.x", &body));
        assert!(!payload.contains_key("call_forwarded"), "absent CCV, absent flag");
        assert_eq!(payload["emergency_resource_used"], json!(false));
        assert_eq!(payload["local_resource_used"], json!(true));
        assert_eq!(payload["is_internal_leg"], json!(true));
    }

    #[test]
    fn custom_channel_vars_is_always_present_and_honours_the_reserved_list() {
        let mut body = channel_body("CHANNEL_CREATE");
        body["Custom-Channel-Vars"] = json!({"Account-ID": ACCOUNT_ID, "Realm": "r", "Bridge-ID": "b", "Zeta": 1});
        body.as_object_mut().expect("object").remove("Custom-Application-Vars");
        let event = parse("call.CHANNEL_CREATE.x", &body);
        let payload = build(&event);
        assert_eq!(payload["custom_channel_vars"], json!({"Bridge-ID": "b", "Zeta": 1}));
        assert!(!payload.contains_key("custom_application_vars"));

        let reserved = ReservedCcvKeys::new(["Bridge-ID", "Zeta"]);
        let context = PayloadContext { reseller_id: None, reserved_ccv_keys: &reserved };
        let payload = base_payload(&event, &context);
        assert_eq!(payload["custom_channel_vars"], json!({"Account-ID": ACCOUNT_ID, "Realm": "r"}));
        assert!(!payload.contains_key("reseller_id"));

        body["Custom-Channel-Vars"] = json!({"Account-ID": ACCOUNT_ID});
        let payload = build(&parse("call.CHANNEL_CREATE.x", &body));
        assert_eq!(payload["custom_channel_vars"], json!({}));
    }

    #[test]
    fn without_an_account_ccv_the_router_gets_the_dialled_number() {
        let mut body = Fixture::load("CHANNEL_CREATE.json").body().clone();
        body["Custom-Channel-Vars"].as_object_mut().expect("ccvs").remove("Account-ID");
        let mut event = parse("call.CHANNEL_CREATE.x", &body);
        assert_eq!(event.account_id, None);
        let EventKind::Channel(channel) = &event.kind else { panic!("channel event") };
        assert_eq!(channel.dialled_number(InboundUserField::Request), Some("+14155550100"));
        assert_eq!(channel.dialled_number(InboundUserField::To), Some("+14155550100"));

        let mut without_request = body.clone();
        without_request.as_object_mut().expect("object").remove("Request");
        without_request["To-DID"] = json!("+14155550111");
        let fallback = parse("call.CHANNEL_CREATE.x", &without_request);
        let EventKind::Channel(channel) = &fallback.kind else { panic!("channel event") };
        assert_eq!(channel.dialled_number(InboundUserField::Request), Some("+14155550111"));

        // The router writes the account it found into the event before building the payload.
        event.account_id = Some(account(ACCOUNT_ID));
        assert_eq!(build(&event)["account_id"], json!(ACCOUNT_ID));
    }

    #[test]
    fn a_request_object_is_kept_as_kazoo_would_send_it() {
        let mut body = channel_body("CHANNEL_CREATE");
        body["Request"] = json!({"user": "1001"});
        assert_eq!(build(&parse("call.CHANNEL_CREATE.x", &body))["request"], json!({"user": "1001"}));
    }

    #[test]
    fn bridge_and_destroy_append_their_own_fields_after_hook_event() {
        let bridge = Fixture::load("CHANNEL_BRIDGE.json").event();
        let keys: Vec<String> = build(&bridge).keys().cloned().collect();
        assert_eq!(keys[keys.len() - 3..], ["hook_event", "original_number", "other_leg_destination_number"]);
        let EventKind::Channel(channel) = &bridge.kind else { panic!("channel event") };
        assert_eq!(channel.name, ChannelEventName::Bridge);
    }
}

mod object_events {
    use super::*;

    fn object_body(event_name: &str, doc_type: &str, database: &str, id: &str) -> Value {
        let mut body = Fixture::load("object_doc_created_user.json").body().clone();
        body["Event-Name"] = json!(event_name);
        body["Type"] = json!(doc_type);
        body["Database"] = json!(database);
        body["ID"] = json!(id);
        body
    }

    const ACCOUNT_DB: &str = "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d";

    #[test]
    fn database_events_are_not_delivered() {
        for name in ["db_created", "db_edited", "db_deleted", "db_views_updated"] {
            let body = object_body(name, "database", ACCOUNT_DB, ACCOUNT_DB);
            let error = KazooEvent::parse("db_created.x.database.y", &body).expect_err("not delivered");
            assert!(matches!(error, EventError::DatabaseEvent(_)), "{name}: {error}");
            assert!(error.is_ignored());
        }
        let body = object_body("doc_edited", "database", ACCOUNT_DB, "x");
        assert!(matches!(KazooEvent::parse("k", &body), Err(EventError::DatabaseEvent(_))));
    }

    #[test]
    fn only_the_configured_object_types_are_delivered() {
        let body = object_body("doc_created", "cdr", ACCOUNT_DB, "x");
        assert_eq!(KazooEvent::parse("k", &body), Err(EventError::UnwatchedObjectType("cdr".to_owned())));
        let event = KazooEvent::parse_with_object_types("k", &body, &["cdr".to_owned()]).expect("configured type");
        assert_eq!(event.lookup_key(), Some(HookType::Object));
        let device = object_body("doc_created", "device", ACCOUNT_DB, "x");
        assert!(KazooEvent::parse_with_object_types("k", &device, &["cdr"]).is_err());
    }

    #[test]
    fn account_changes_are_delivered_once_from_the_accounts_database() {
        let from_account_db = object_body("doc_edited", "account", ACCOUNT_DB, ACCOUNT_ID);
        assert_eq!(KazooEvent::parse("k", &from_account_db), Err(EventError::DuplicateAccountChange));
        let from_accounts = object_body("doc_edited", "account", "accounts", ACCOUNT_ID);
        let event = parse("k", &from_accounts);
        assert_eq!(event.account_id, Some(account(ACCOUNT_ID)));
        assert_eq!(
            build(&event),
            object(json!({"id": ACCOUNT_ID, "account_id": ACCOUNT_ID, "action": "doc_edited", "type": "account"}))
        );
    }

    #[test]
    fn the_account_comes_from_any_account_database_spelling_including_modbs() {
        for database in [
            ACCOUNT_DB,
            "account/3a/4b/5c6d7e8f9a0b1c2d3e4f5a6b7c8d",
            "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d-202403",
        ] {
            let event = parse("k", &object_body("doc_created", "mailbox_message", database, "x"));
            assert_eq!(event.account_id, Some(account(ACCOUNT_ID)), "{database}");
        }
        let error =
            KazooEvent::parse("k", &object_body("doc_created", "user", "webhooks", "x")).expect_err("no account");
        assert_eq!(error, EventError::NotAccountScoped("webhooks".to_owned()));
    }

    #[test]
    fn the_routing_key_fills_in_missing_document_coordinates() {
        let body = json!({"Event-Category": "configuration", "Event-Name": "doc_deleted"});
        let event = parse(&format!("doc_deleted.{ACCOUNT_DB}.vmbox.abc%2Edef"), &body);
        let EventKind::Object(object) = &event.kind else { panic!("object event") };
        assert_eq!(object.action, ObjectAction::Deleted);
        assert_eq!((object.doc_type.as_str(), object.doc_id.as_str()), ("vmbox", "abc.def"));
        assert_eq!(event.account_id, Some(account(ACCOUNT_ID)));
    }
}

mod notification_events {
    use super::*;

    fn voicemail() -> Value {
        Fixture::load("notification_voicemail_new.json").body().clone()
    }

    #[test]
    fn a_missing_required_field_drops_the_notification() {
        let mut body = voicemail();
        body.as_object_mut().expect("object").remove("Voicemail-Box");
        assert_eq!(
            KazooEvent::parse("notifications.voicemail.new", &body),
            Err(EventError::IncompleteNotification { notification: "voicemail_new", field: "Voicemail-Box" })
        );
        body["Voicemail-Box"] = Value::Null;
        assert!(KazooEvent::parse("notifications.voicemail.new", &body).is_err(), "null counts as missing");
    }

    #[test]
    fn unknown_names_and_wrong_categories_are_refused() {
        let mut body = voicemail();
        body["Event-Name"] = json!("skel");
        assert_eq!(
            KazooEvent::parse("notifications.skel", &body),
            Err(EventError::UnknownNotification("skel".to_owned()))
        );
        let mut body = voicemail();
        body.as_object_mut().expect("object").remove("Event-Category");
        assert_eq!(
            KazooEvent::parse("notifications.voicemail.new", &body),
            Err(EventError::MissingField("Event-Category"))
        );
    }

    #[test]
    fn the_account_follows_kazoos_lookup_order() {
        let other = "1f0e2d3c4b5a69788796a5b4c3d2e1f0";
        let mut body = voicemail();
        body["account_id"] = json!(other);
        assert_eq!(parse("k", &body).account_id, Some(account(other)), "account_id before Account-ID");

        let mut body = json!({"Event-Category": "notification", "Event-Name": "system_alert", "Message": "m",
                              "Subject": "s", "Details": {"Account-ID": other}});
        assert_eq!(parse("k", &body).account_id, Some(account(other)), "Details.Account-ID as a fallback");
        body["Details"] = json!({"Custom-Channel-Vars": {"Account-ID": other}});
        assert_eq!(parse("k", &body).account_id, Some(account(other)));
        body.as_object_mut().expect("object").remove("Details");
        assert_eq!(parse("k", &body).account_id, None, "system alerts may have no account");
    }

    #[test]
    fn the_payload_is_the_whole_message_normalized() {
        let mut body = voicemail();
        body["Caller-ID-Name"] = Value::Null;
        body["Extra-Info"] = json!({"Nested-Key": [{"Deep-Key": 1, "Gone": null}]});
        let payload = build(&parse("k", &body));
        assert!(!payload.contains_key("caller_id_name"));
        assert_eq!(payload["extra_info"], json!({"nested_key": [{"deep_key": 1}]}));
        assert_eq!(payload["event_category"], json!("notification"));
        assert_eq!(payload["msg_id"], json!("9e4a3b2c1d0f5e6a7b8c9d0e1f2a3b4c"));
    }

    #[test]
    fn the_callflow_webhook_is_its_own_kind_for_its_own_hook_only() {
        let body = json!({
            "Event-Category": "notification", "Event-Name": "webhook",
            "Hook": {"_id": "63877219205", "uri": "https://hooks.example.com/cf", "http_verb": "post",
                     "hook": "notifications", "custom_data": {"source": "callflow"}, "pvt_account_id": ACCOUNT_ID},
            "Data": {"Call-ID": "abc", "Caller-ID-Name": "Bob", "Empty": null}
        });
        let event = parse("notifications.webhook.callflow", &body);
        assert!(matches!(event.kind, EventKind::CallflowWebhook(_)));
        assert_eq!(event.lookup_key(), None);
        assert_eq!(event.account_id, Some(account(ACCOUNT_ID)));
        assert!(!HookView::new(HookType::All).accepts(&event), "registered hooks never receive it");
        assert!(!HookView::new(HookType::Notifications).accepts(&event));

        let EventKind::CallflowWebhook(webhook) = &event.kind else { panic!("callflow webhook") };
        let hook = HookView::from_document(&webhook.hook).expect("on-the-fly hook");
        let payload = finish_payload(&build(&event), &hook, CLUSTER_ID).expect("delivered");
        assert_same_json(
            &payload,
            &json!({"call_id": "abc", "caller_id_name": "Bob", "source": "callflow", "cluster_id": CLUSTER_ID}),
            "callflow webhook",
        );
    }

    #[test]
    fn the_table_has_all_38_kazoo_types() {
        assert_eq!(NOTIFICATION_TYPES.len(), 38);
        let webhook_disabled = notifications::by_name("webhook_disabled").expect("present");
        assert_eq!(webhook_disabled.routing_key, "notifications.webhook.disabled");
        assert_eq!(webhook_disabled.required_fields, ["Account-ID", "Hook-ID"]);
        assert!(webhook_disabled.super_admin_only);
        assert!(notifications::by_name("system_alert").expect("present").super_admin_only);
        assert!(!notifications::by_name("voicemail_new").expect("present").super_admin_only);
        assert_eq!(
            notifications::by_routing_key("notifications.account.reminder").map(|entry| entry.name),
            Some("bill_reminder")
        );
    }
}

mod parking_and_messages {
    use super::*;

    #[test]
    fn parking_keeps_the_slot_a_string_and_replaces_a_published_account_in_place() {
        let mut body = Fixture::load("parking_PARK_PARKED.json").body().clone();
        let fields = body.as_object_mut().expect("object");
        fields.shift_insert(0, "Account-ID".to_owned(), json!("stale"));
        fields.insert("Server-ID".to_owned(), json!("srv"));
        let payload = build(&parse("call.PARK_PARKED.x", &body));
        let keys: Vec<&str> = payload.keys().map(String::as_str).collect();
        assert_eq!(keys[0], "account_id");
        assert_eq!(payload["account_id"], json!(ACCOUNT_ID));
        assert_eq!(payload["parking_slot"], json!("1"));
        assert_eq!(payload["server_id"], json!("srv"));
        for dropped in ["node", "msg_id", "app_version", "app_name", "event_category", "custom_channel_vars"] {
            assert!(!payload.contains_key(dropped), "{dropped}");
        }
    }

    #[test]
    fn channel_and_parking_events_name_their_call_for_logs_and_others_none() {
        let parking = Fixture::load("parking_PARK_PARKED.json");
        let parked = parse("call.PARK_PARKED.x", parking.body());
        assert_eq!(parked.call_id(), parking.body()["Call-ID"].as_str());
        let created = json!({"Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", "Call-ID": "c-1",
                             "Custom-Channel-Vars": {"Account-ID": ACCOUNT_ID}});
        assert_eq!(parse("call.CHANNEL_CREATE.c-1", &created).call_id(), Some("c-1"));
        let sms =
            json!({"Event-Category": "sms", "Event-Name": "inbound", "Message-ID": "m1", "Account-ID": ACCOUNT_ID});
        assert_eq!(parse("sms.inbound.offnet.m1", &sms).call_id(), None);
    }

    #[test]
    fn parking_needs_a_call_id_and_an_account_ccv() {
        let mut body = Fixture::load("parking_PARK_PARKED.json").body().clone();
        body["Custom-Channel-Vars"] = json!({});
        assert_eq!(parse("call.PARK_PARKED.x", &body).account_id, None);
        body.as_object_mut().expect("object").remove("Call-ID");
        assert_eq!(KazooEvent::parse("call.PARK_PARKED.x", &body), Err(EventError::MissingField("Call-ID")));
    }

    #[test]
    fn sms_and_mms_payloads_have_the_documented_shape() {
        let body = json!({
            "Event-Category": "sms", "Event-Name": "inbound", "Message-ID": "m1", "Account-ID": ACCOUNT_ID,
            "From": "+14085550199", "To": "+14155550100", "Body": "hello", "Route-Type": "offnet",
            "Charges": "0.05", "Msg-ID": "x"
        });
        let event = parse("sms.inbound.offnet.m1", &body);
        assert_eq!(event.lookup_key(), Some(HookType::Sms));
        assert_same_json(
            &build(&event),
            &json!({"id": "m1", "account_id": ACCOUNT_ID, "type": "sms", "from": "+14085550199",
                    "to": "+14155550100", "body": "hello", "origin": "offnet", "charges": 0.05}),
            "sms",
        );
        let mut mms = body.clone();
        mms["Event-Category"] = json!("mms");
        mms.as_object_mut().expect("object").remove("Charges");
        let event = parse("mms.inbound.offnet.m1", &mms);
        assert_eq!(event.lookup_key(), Some(HookType::Mms));
        let payload = build(&event);
        assert_eq!(payload["type"], json!("mms"));
        assert!(!payload.contains_key("charges"));
    }

    #[test]
    fn bodies_that_are_not_objects_or_of_unknown_kind_are_refused() {
        assert_eq!(KazooEvent::parse("call.CHANNEL_CREATE.x", &json!([])), Err(EventError::NotAnObject));
        assert!(matches!(KazooEvent::parse("weird.key", &json!({})), Err(EventError::UnknownKind(_))));
        let error = KazooEvent::parse("k", &json!({"Event-Category": "presence"})).expect_err("unsupported");
        assert!(error.is_ignored());
    }
}

mod normalization {
    use super::*;

    #[test]
    fn keys_are_lower_cased_with_underscores_including_latin1_capitals() {
        assert_eq!(normalize_key("Call-ID"), "call_id");
        assert_eq!(normalize_key("Voicemail-Box"), "voicemail_box");
        assert_eq!(normalize_key("ÀÉÖ-Ø×Þ"), "àéö_ø×þ");
        assert_eq!(normalize_key("already_normal"), "already_normal");
    }

    #[test]
    fn nulls_are_dropped_recursively_and_arrays_are_walked() {
        let input = object(json!({
            "Top-Key": "v", "Null-Key": null,
            "Nested": {"Inner-Key": null, "Kept-Key": {"Deep-Key": 2}},
            "List": [{"Item-Key": 1, "Gone": null}, "text", null, ["Not-A-Key"]]
        }));
        assert_same_json(
            &normalize_object(&input),
            &json!({"top_key": "v", "nested": {"kept_key": {"deep_key": 2}},
                    "list": [{"item_key": 1}, "text", null, ["Not-A-Key"]]}),
            "normalize",
        );
    }
}

mod filters {
    use super::*;

    fn object_event(doc_type: &str, action: &str) -> KazooEvent {
        let mut body = Fixture::load("object_doc_created_user.json").body().clone();
        body["Type"] = json!(doc_type);
        body["Event-Name"] = json!(action);
        parse("k", &body)
    }

    fn object_hook(custom_data: &Map<String, Value>) -> HookView<'_> {
        HookView { custom_data: Some(custom_data), ..HookView::new(HookType::Object) }
    }

    #[test]
    fn object_hooks_filter_on_type_and_action() {
        let user_created = object_event("user", "doc_created");
        let cases = [
            (json!({"type": "user", "action": "doc_created"}), true),
            (json!({"type": "user", "action": "all"}), true),
            (json!({"type": "all", "action": "all"}), true),
            (json!({"type": "device", "action": "all"}), false),
            (json!({"type": "user", "action": "doc_deleted"}), false),
            // Unlike Kazoo, a missing filter key means all.
            (json!({"type": "user"}), true),
            (json!({"action": "doc_created"}), true),
            (json!({"action": "doc_edited"}), false),
            (json!({}), true),
            (json!({"type": ["user"], "action": "all"}), false),
        ];
        for (custom_data, expected) in cases {
            let custom_data = object(custom_data);
            assert_eq!(object_hook(&custom_data).accepts(&user_created), expected, "{custom_data:?}");
        }
        assert!(HookView::new(HookType::Object).accepts(&user_created), "no custom_data passes");
    }

    #[test]
    fn notification_hooks_filter_on_type() {
        let event = Fixture::load("notification_voicemail_new.json").event();
        let cases = [
            (json!({"type": "voicemail_new"}), true),
            (json!({"type": "all"}), true),
            (json!({"type": "voicemail_saved"}), false),
            // As in Kazoo: custom_data without type matches nothing.
            (json!({"crm": "zendesk"}), false),
        ];
        for (custom_data, expected) in cases {
            let custom_data = object(custom_data);
            let hook = HookView { custom_data: Some(&custom_data), ..HookView::new(HookType::Notifications) };
            assert_eq!(hook.accepts(&event), expected, "{custom_data:?}");
        }
        assert!(HookView::new(HookType::Notifications).accepts(&event), "no custom_data passes");
    }

    #[test]
    fn all_hooks_receive_every_kind_and_bypass_the_type_filters() {
        let narrow = object(json!({"type": "device", "action": "doc_deleted"}));
        let all = HookView { custom_data: Some(&narrow), ..HookView::new(HookType::All) };
        for fixture in Fixture::all() {
            assert!(all.accepts(&fixture.event()), "{}", fixture.file);
        }
    }

    #[test]
    fn hooks_of_another_type_do_not_receive_the_event() {
        let create = Fixture::load("CHANNEL_CREATE.json").event();
        assert!(HookView::new(HookType::ChannelCreate).accepts(&create));
        assert!(
            HookView::new(HookType::parse("CHANNEL_CREATE").expect("a hook type")).accepts(&create),
            "hook types compare case-insensitively"
        );
        for other in [
            HookType::ChannelAnswer,
            HookType::Object,
            HookType::Notifications,
            HookType::Parking,
            HookType::Sms,
            HookType::Mms,
        ] {
            assert!(!HookView::new(other).accepts(&create), "{other}");
        }
    }

    #[test]
    fn loopback_legs_are_skipped_by_hooks_excluding_internal_legs() {
        let mut loopback = channel_body("CHANNEL_CREATE");
        loopback["Channel-Is-Loopback"] = json!(true);
        let mut named_loopback = channel_body("CHANNEL_CREATE");
        named_loopback["Channel-Name"] = json!("loopback/1001-a");
        let external = parse("k", &channel_body("CHANNEL_CREATE"));
        for hook_type in [HookType::ChannelCreate, HookType::All] {
            let excluding = HookView { include_internal_legs: false, ..HookView::new(hook_type) };
            let including = HookView::new(hook_type);
            for body in [&loopback, &named_loopback] {
                let event = parse("k", body);
                assert!(!excluding.accepts(&event), "{hook_type}");
                assert!(including.accepts(&event), "{hook_type}");
            }
            assert!(excluding.accepts(&external), "{hook_type}");
        }
        let document = object(json!({"hook": "channel_create", "include_internal_legs": false}));
        assert!(!HookView::from_document(&document).expect("hook").accepts(&parse("k", &loopback)));
    }
}

mod finishing {
    use super::*;

    fn base() -> Map<String, Value> {
        object(json!({"call_direction": "inbound", "call_id": "c1", "timestamp": 5, "hook_event": "channel_create"}))
    }

    #[test]
    fn modifiers_compare_values_and_array_membership() {
        let payload = base();
        let cases = [
            (json!({"call_direction": "inbound"}), true),
            (json!({"call_direction": "outbound"}), false),
            (json!({"call_direction": ["outbound", "inbound"]}), true),
            (json!({"call_direction": ["outbound"]}), false),
            (json!({"call_direction": []}), true),
            (json!({"not_in_payload": "anything"}), true),
            (json!({"timestamp": 5}), true),
            (json!({"timestamp": "5"}), false),
            (json!({"call_direction": "inbound", "call_id": "other"}), false),
        ];
        for (modifiers, expected) in cases {
            let modifiers = object(modifiers);
            assert_eq!(modifiers_match(&payload, &modifiers), expected, "{modifiers:?}");
            let hook = HookView { modifiers: Some(&modifiers), ..HookView::new(HookType::ChannelCreate) };
            assert_eq!(finish_payload(&payload, &hook, CLUSTER_ID).is_some(), expected, "{modifiers:?}");
        }
    }

    #[test]
    fn custom_data_drops_filters_overwrites_in_place_and_appends_in_reverse() {
        let custom_data = object(json!({"type": "x", "first": "1", "call_id": "mine", "action": "y", "second": "2"}));
        let mut payload = base();
        merge_custom_data(&mut payload, &custom_data);
        assert_same_json(
            &payload,
            &json!({"call_direction": "inbound", "call_id": "mine", "timestamp": 5, "hook_event": "channel_create",
                    "second": "2", "first": "1"}),
            "merge",
        );
    }

    #[test]
    fn cluster_id_is_set_last_and_always_wins() {
        let custom_data = object(json!({"cluster_id": "spoofed", "environment": "production"}));
        let hook = HookView { custom_data: Some(&custom_data), ..HookView::new(HookType::ChannelCreate) };
        let mut with_cluster = base();
        with_cluster.insert("cluster_id".to_owned(), json!("from-event"));
        for base in [base(), with_cluster] {
            let payload = finish_payload(&base, &hook, CLUSTER_ID).expect("delivered");
            assert_eq!(payload.keys().next_back().map(String::as_str), Some("cluster_id"));
            assert_eq!(payload["cluster_id"], json!(CLUSTER_ID));
            assert_eq!(payload["environment"], json!("production"));
        }
    }

    #[test]
    fn the_base_payload_is_left_untouched_for_the_next_hook() {
        let base = base();
        let custom_data = object(json!({"extra": "x"}));
        let hook = HookView { custom_data: Some(&custom_data), ..HookView::new(HookType::ChannelCreate) };
        let _ = finish_payload(&base, &hook, CLUSTER_ID);
        assert_eq!(base, super::finishing::base());
        assert!(!base.contains_key("extra"));
    }
}

mod form_encoding {
    use super::*;

    fn encode(value: Value) -> String {
        form::encode(&object(value))
    }

    #[test]
    fn kazoos_examples_encode_identically() {
        assert_eq!(
            encode(json!({"foo": "bar", "fizz": "buzz", "arr": [1, 3, 5]})),
            "foo=bar&fizz=buzz&arr[]=1&arr[]=3&arr[]=5"
        );
        assert_eq!(
            encode(json!({"topkey": {"subkey1": "v1", "subkey2": {"k3": "v3"}}})),
            "topkey[subkey1]=v1&topkey[subkey2][k3]=v3"
        );
        assert_eq!(
            encode(json!({"url": "http://user:pass@host:port/"})),
            "url=http%3A%2F%2Fuser%3Apass%40host%3Aport%2F"
        );
    }

    #[test]
    fn values_keep_unreserved_characters_and_escape_the_rest() {
        assert_eq!(encode(json!({"v": "A-z_0.9~ +&=[]é"})), "v=A-z_0.9~+%2B%26%3D%5B%5D%C3%A9");
        assert_eq!(encode(json!({"t": true, "f": false, "n": 1.5, "i": -2})), "t=true&f=false&n=1.5&i=-2");
    }

    #[test]
    fn empty_structures_and_nulls_leave_no_stray_separator() {
        assert_eq!(encode(json!({"a": 1, "b": {}, "c": 2})), "a=1&c=2");
        assert_eq!(encode(json!({"a": 1, "b": {}})), "a=1");
        assert_eq!(encode(json!({"b": {}, "a": 1})), "a=1");
        assert_eq!(encode(json!({"a": 1, "e": [], "c": 2})), "a=1&c=2");
        assert_eq!(encode(json!({"a": null, "b": 1, "c": null})), "b=1");
        assert_eq!(encode(json!({"a": {"x": null, "y": {}}, "b": [null, 2]})), "b[]=2");
        assert_eq!(encode(json!({})), "");
    }

    #[test]
    fn keys_are_escaped_except_brackets_at_every_level() {
        assert_eq!(encode(json!({"a b&c=d": "x"})), "a+b%26c%3Dd=x");
        assert_eq!(encode(json!({"k[0]": "x"})), "k[0]=x");
        assert_eq!(encode(json!({"outer key": {"in/ner": {"é": 1}}})), "outer+key[in%2Fner][%C3%A9]=1");
        assert_eq!(encode(json!({"list#": ["a b"]})), "list%23[]=a+b");
    }

    #[test]
    fn structures_inside_arrays_are_sent_as_json_text() {
        assert_eq!(encode(json!({"items": [{"k": "v"}, [1]]})), "items[]=%7B%22k%22%3A%22v%22%7D&items[]=%5B1%5D");
    }

    #[test]
    fn get_urls_join_an_existing_query_string_with_an_ampersand() {
        let payload = object(json!({"a": "1", "b": "x y"}));
        let cases = [
            ("https://h.example.com/p", "https://h.example.com/p?a=1&b=x+y"),
            ("https://h.example.com/p?token=abc", "https://h.example.com/p?token=abc&a=1&b=x+y"),
            ("https://h.example.com/p?", "https://h.example.com/p?a=1&b=x+y"),
            ("https://h.example.com/p?token=abc&", "https://h.example.com/p?token=abc&a=1&b=x+y"),
            ("https://h.example.com/p#frag", "https://h.example.com/p?a=1&b=x+y#frag"),
            ("https://h.example.com/p?t=1#frag", "https://h.example.com/p?t=1&a=1&b=x+y#frag"),
        ];
        for (uri, expected) in cases {
            assert_eq!(form::url_with_query(uri, &payload), expected, "{uri}");
        }
        assert_eq!(form::url_with_query("https://h.example.com/p", &Map::new()), "https://h.example.com/p");
    }
}

mod sample_payloads {
    use super::*;

    /// The fixture's expected payload without the keys its hook's custom_data added: samples are
    /// what a hook without custom data receives.
    fn expected_without_custom_data(file: &str) -> Value {
        let fixture = Fixture::load(file);
        let mut expected = fixture.json["expected_http_payload"].as_object().expect("payload").clone();
        if let Some(custom_data) = fixture.hook().get("custom_data").and_then(Value::as_object) {
            for key in custom_data.keys().filter(|key| *key != "type" && *key != "action") {
                expected.shift_remove(key);
            }
        }
        Value::Object(expected)
    }

    #[test]
    fn the_ids_are_kazoos_list_sorted() {
        assert_eq!(
            samples::sample_ids(),
            [
                "webhooks_channel_answer",
                "webhooks_channel_bridge",
                "webhooks_channel_create",
                "webhooks_channel_destroy",
                "webhooks_notifications",
                "webhooks_object",
                "webhooks_parking",
            ]
        );
        assert!(samples::sample_ids().is_sorted());
        for id in samples::sample_ids() {
            assert!(!samples::sample(id).expect("known id").is_empty(), "{id}");
        }
        assert_eq!(samples::sample("webhooks_sms"), None);
        assert_eq!(samples::sample("channel_create"), None);
    }

    #[test]
    fn channel_samples_are_the_fixture_payloads_built_by_the_builder() {
        for (id, file) in [
            ("webhooks_channel_answer", "CHANNEL_ANSWER.json"),
            ("webhooks_channel_bridge", "CHANNEL_BRIDGE.json"),
            ("webhooks_channel_create", "CHANNEL_CREATE.json"),
            ("webhooks_channel_destroy", "CHANNEL_DESTROY.json"),
        ] {
            let sample = samples::sample(id).expect("known id");
            assert_eq!(sample.len(), 1, "{id}");
            let payload = sample[0].as_object().expect("object");
            assert_same_json(payload, &expected_without_custom_data(file), id);
        }
    }

    #[test]
    fn the_object_sample_has_one_entry_per_action() {
        let sample = samples::sample("webhooks_object").expect("known id");
        let actions: Vec<&str> = sample.iter().map(|payload| payload["action"].as_str().expect("action")).collect();
        assert_eq!(actions, ["doc_created", "doc_edited", "doc_deleted"]);
        let created = sample[0].as_object().expect("object");
        assert_same_json(created, &expected_without_custom_data("object_doc_created_user.json"), "object");
    }

    #[test]
    fn the_parking_sample_covers_the_three_park_events() {
        let sample = samples::sample("webhooks_parking").expect("known id");
        let names: Vec<&str> = sample.iter().map(|payload| payload["event_name"].as_str().expect("name")).collect();
        assert_eq!(names, ["PARK_PARKED", "PARK_RETRIEVED", "PARK_ABANDONED"]);
        assert_same_json(
            sample[0].as_object().expect("object"),
            &expected_without_custom_data("parking_PARK_PARKED.json"),
            "parking",
        );
    }

    #[test]
    fn the_notifications_sample_has_one_entry_per_type_told_apart_by_event_name() {
        let sample = samples::sample("webhooks_notifications").expect("known id");
        let names: Vec<&str> = sample.iter().map(|payload| payload["event_name"].as_str().expect("name")).collect();
        let expected: Vec<&str> =
            NOTIFICATION_TYPES.iter().map(|entry| entry.name).filter(|name| *name != "webhook").collect();
        assert_eq!(names, expected);
        for (payload, entry) in sample.iter().zip(NOTIFICATION_TYPES.iter().filter(|entry| entry.name != "webhook")) {
            for field in entry.required_fields {
                assert!(payload.get(normalize_key(field)).is_some(), "{}: {field}", entry.name);
            }
            assert_eq!(payload["event_category"], json!("notification"), "{}", entry.name);
            assert_eq!(payload["cluster_id"], json!(CLUSTER_ID), "{}", entry.name);
        }
        let voicemail = sample.iter().find(|payload| payload["event_name"] == "voicemail_new").expect("voicemail");
        assert_same_json(
            voicemail.as_object().expect("object"),
            &expected_without_custom_data("notification_voicemail_new.json"),
            "voicemail_new",
        );
    }
}
