//! Parking events and instant messages (SMS, MMS), and bodies of no known kind.

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
    let sms = json!({"Event-Category": "sms", "Event-Name": "inbound", "Message-ID": "m1", "Account-ID": ACCOUNT_ID});
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
    assert_eq!(event.lookup_key(), Some("sms"));
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
    assert_eq!(event.lookup_key(), Some("mms"));
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
