//! Every fixture of `crates/model/fixtures/amqp-events`: its payload, form body or URL, account and
//! hook type, field by field.

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
        assert_eq!(event.lookup_key(), fixture.hook()["hook"].as_str(), "{}", fixture.file);
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
        let hook_type = fixture.hook()["hook"].as_str().expect("hook type");
        assert_eq!(event.attempt_hook_event(hook_type), expected, "{file}");
        assert_eq!(event.attempt_hook_event("all"), "all", "{file}");
    }
}
