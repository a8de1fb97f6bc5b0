//! Validation of webhook documents (docs/kazoo.md#validation): every rule's exact
//! Crossbar error, coercion, defaults, the uri and header checks, modifiers and PATCH's merge.

mod fields;
mod modifiers;
mod uris;

use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use webhooks_model::errors::ValidationErrors;
use webhooks_model::hooks::HookDefinitions;
use webhooks_model::webhook::{Format, HttpVerb, ValidationContext, WebhookDocument, validate_webhook};

static DEFINITIONS: LazyLock<HookDefinitions> = LazyLock::new(HookDefinitions::default);

/// Who is asking, as the three knobs of [`ValidationContext`].
#[derive(Clone, Copy)]
struct Caller {
    superduper_admin: bool,
    allow_private_targets: bool,
}

const RESELLER: Caller = Caller { superduper_admin: false, allow_private_targets: false };

const ADMIN: Caller = Caller { superduper_admin: true, allow_private_targets: false };

const PRIVATE_OK: Caller = Caller { superduper_admin: false, allow_private_targets: true };

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn validate_as(caller: Caller, data: Value) -> Result<WebhookDocument, ValidationErrors> {
    let context = ValidationContext {
        definitions: &DEFINITIONS,
        superduper_admin: caller.superduper_admin,
        allow_private_targets: caller.allow_private_targets,
    };
    validate_webhook(&object(data), &context)
}

fn accepted(data: Value) -> WebhookDocument {
    validate_as(RESELLER, data.clone()).unwrap_or_else(|errors| panic!("{data} refused: {}", errors.into_json()))
}

fn refused_as(caller: Caller, data: Value) -> Value {
    match validate_as(caller, data.clone()) {
        Ok(document) => panic!("{data} accepted as {:?}", document.fields()),
        Err(errors) => errors.into_json(),
    }
}

fn refused(data: Value) -> Value {
    refused_as(RESELLER, data)
}

/// A valid channel hook with `extra` merged over it.
fn hook_with(extra: Value) -> Value {
    let mut data =
        object(json!({"name": "New calls", "uri": "https://hooks.example.com/new", "hook": "channel_create"}));
    data.extend(object(extra));
    Value::Object(data)
}

const HOOK_ENUM: [&str; 10] = [
    "all",
    "channel_answer",
    "channel_bridge",
    "channel_create",
    "channel_destroy",
    "mms",
    "notifications",
    "object",
    "parking",
    "sms",
];

#[test]
fn every_schema_rule_answers_crossbars_exact_error() {
    let cases = [
        (
            json!({"uri": "https://hooks.example.com/new", "hook": "channel_create"}),
            json!({"name": {"required": {"message": "Field is required but missing", "value": "name"}}}),
        ),
        (
            hook_with(json!({"http_verb": "delete"})),
            json!({"http_verb": {"enum": {"message": "Value not found in enumerated list of values",
                                          "target": ["get", "post", "put"], "value": "delete"}}}),
        ),
        (
            hook_with(json!({"format": "xml"})),
            json!({"format": {"enum": {"message": "Value not found in enumerated list of values",
                                       "target": ["form-data", "json"], "value": "xml"}}}),
        ),
        (
            hook_with(json!({"hook": "callflow"})),
            json!({"hook": {"enum": {"message": "Value not found in enumerated list of values",
                                     "target": HOOK_ENUM, "value": "callflow"}}}),
        ),
        (
            hook_with(json!({"retries": "many"})),
            json!({"retries": {"type": {"message": "Value did not match type(s): integer", "target": "integer",
                                        "value": "many"}}}),
        ),
        (
            hook_with(json!({"retries": -1})),
            json!({"retries": {"minimum": {"message": "Value must be at least 0", "target": 0, "value": -1}}}),
        ),
        (
            hook_with(json!({"retries": 5})),
            json!({"retries": {"maximum": {"message": "Value must be at most 4", "target": 4, "value": 5}}}),
        ),
        (
            hook_with(json!({"enabled": "yes"})),
            json!({"enabled": {"type": {"message": "Value did not match type(s): boolean", "target": "boolean",
                                        "value": "yes"}}}),
        ),
        (
            hook_with(json!({"name": 7})),
            json!({"name": {"type": {"message": "Value did not match type(s): string", "target": "string",
                                     "value": 7}}}),
        ),
        (
            hook_with(json!({"custom_data": {"foo": 5}})),
            json!({"custom_data.foo": {"type": {"message": "Value did not match type(s): string",
                                                "target": "string", "value": 5}}}),
        ),
        (
            hook_with(json!({"custom_data": {"a.b": true}})),
            json!({"custom_data.a%2Eb": {"type": {"message": "Value did not match type(s): string",
                                                  "target": "string", "value": true}}}),
        ),
        (
            hook_with(json!({"custom_data": "foo"})),
            json!({"custom_data": {"type": {"message": "Value did not match type(s): object", "target": "object",
                                            "value": "foo"}}}),
        ),
        (
            hook_with(json!({"uri": "https://localhost:345/webhook"})),
            json!({"uri": {"error": {"message": "invalid client URL", "cause": "host 'localhost' is blacklisted",
                                     "value": "https://localhost:345/webhook"}}}),
        ),
    ];
    for (data, expected) in cases {
        assert_eq!(refused(data.clone()), expected, "for {data}");
    }
}

#[test]
fn all_schema_errors_are_reported_at_once() {
    let errors = refused(json!({"hook": "nope", "http_verb": "delete", "retries": 9, "uri": "ftp://example.com/"}));
    let fields: Vec<&str> = errors.as_object().expect("an object").keys().map(String::as_str).collect();
    let mut sorted = fields.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["hook", "http_verb", "name", "retries", "uri"], "got {errors}");
}

#[test]
fn a_create_answers_kazoos_example_with_defaults_appended_in_order() {
    let document = accepted(json!({"name": "New Calls", "uri": "https://hooks.example.com/calls/new",
                                   "http_verb": "post", "hook": "channel_create", "retries": 3}));
    let expected = json!({"name": "New Calls", "uri": "https://hooks.example.com/calls/new", "http_verb": "post",
                          "hook": "channel_create", "retries": 3, "enabled": true, "format": "form-data",
                          "include_internal_legs": true});
    assert_eq!(
        serde_json::to_string(document.fields()).expect("serializes"),
        serde_json::to_string(&expected).expect("serializes")
    );
}

#[test]
fn defaults_fill_every_optional_field_but_include_subaccounts() {
    let document = accepted(hook_with(json!({})));
    assert_eq!(document.name(), "New calls");
    assert_eq!(document.uri(), "https://hooks.example.com/new");
    assert_eq!(document.hook(), "channel_create");
    assert_eq!(document.http_verb(), HttpVerb::Post);
    assert_eq!(document.format(), Format::FormData);
    assert_eq!(document.retries(), 2);
    assert!(document.enabled());
    assert!(document.include_internal_legs());
    assert!(!document.include_subaccounts());
    assert!(!document.fields().contains_key("include_subaccounts"));
    assert_eq!(document.custom_data(), None);
    assert_eq!(document.custom_request_headers(), None);
}

#[test]
fn sent_values_are_kept_and_typed() {
    let document = accepted(hook_with(json!({"http_verb": "get", "format": "json", "retries": 0, "enabled": false,
                                             "include_internal_legs": false, "include_subaccounts": true,
                                             "custom_data": {"tag": "x"}})));
    assert_eq!(document.http_verb(), HttpVerb::Get);
    assert_eq!(document.format(), Format::Json);
    assert_eq!(document.retries(), 0);
    assert!(!document.enabled());
    assert!(!document.include_internal_legs());
    assert!(document.include_subaccounts());
    assert_eq!(document.custom_data(), Some(&object(json!({"tag": "x"}))));
}

#[test]
fn string_numbers_and_booleans_are_coerced_as_monster_ui_sends_them() {
    let document = accepted(hook_with(json!({"retries": "3", "enabled": "false", "include_internal_legs": "true",
                                             "include_subaccounts": "true"})));
    assert_eq!(document.fields()["retries"], json!(3));
    assert_eq!(document.fields()["enabled"], json!(false));
    assert_eq!(document.fields()["include_internal_legs"], json!(true));
    assert_eq!(document.fields()["include_subaccounts"], json!(true));
    assert_eq!(document.retries(), 3);
    assert!(!document.enabled() && document.include_internal_legs() && document.include_subaccounts());

    assert_eq!(accepted(hook_with(json!({"retries": "2"}))).fields()["retries"], json!(2));
    assert_eq!(accepted(hook_with(json!({"retries": 4.0}))).fields()["retries"], json!(4));
    // A coerced value is then checked like a sent one, and reported as coerced.
    assert_eq!(
        refused(hook_with(json!({"retries": "-1"}))),
        json!({"retries": {"minimum": {"message": "Value must be at least 0", "target": 0, "value": -1}}})
    );
    assert_eq!(
        refused(hook_with(json!({"retries": "2.5"})))["retries"]["type"]["value"],
        json!("2.5"),
        "strings that are not integers stay strings"
    );
}

#[test]
fn unknown_fields_are_kept_in_their_order() {
    let document = accepted(json!({"ui_metadata": {"origin": "webhooks"}, "name": "n", "group": "Billing",
                                   "uri": "https://hooks.example.com/", "hook": "all", "zeta": [1, 2]}));
    let keys: Vec<&str> = document.fields().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ui_metadata",
            "name",
            "group",
            "uri",
            "hook",
            "zeta",
            "enabled",
            "format",
            "http_verb",
            "include_internal_legs",
            "retries"
        ]
    );
    assert_eq!(document.fields()["ui_metadata"], json!({"origin": "webhooks"}));
    assert_eq!(document.fields()["group"], json!("Billing"));
}

#[test]
fn private_and_read_only_keys_are_dropped() {
    let document = accepted(hook_with(json!({"_id": "x", "_rev": "1-a", "pvt_account_id": "y", "pvt_deleted": true,
                                             "id": "0f3c6a1e9b2d4c7e8a5f1b3d6e9c2a4f",
                                             "disable_reason": "too many failed attempts", "private": "kept"})));
    let fields = document.into_fields();
    for dropped in ["_id", "_rev", "pvt_account_id", "pvt_deleted", "id", "disable_reason"] {
        assert!(!fields.contains_key(dropped), "{dropped} kept");
    }
    assert_eq!(fields["private"], json!("kept"), "only the prefixes are private");
}
