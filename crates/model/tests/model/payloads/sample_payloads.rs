//! The sample payloads, built from the fixtures as deliveries are.

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
