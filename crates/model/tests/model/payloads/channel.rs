//! Channel events: the fields read, typed and left out, the custom channel variables, and what
//! each event adds.

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
    assert_eq!(event.lookup_key(), Some("channel_destroy"));
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
    assert_eq!(event.lookup_key(), Some("channel_answer"));
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
