//! Validation of webhook documents (docs/kazoo.md#validation): every rule's exact
//! Crossbar error, coercion, defaults, the uri and header checks, modifiers and PATCH's merge.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use webhooks_model::errors::ValidationErrors;
use webhooks_model::hooks::HookDefinitions;
use webhooks_model::webhook::{
    Format, HttpVerb, ValidationContext, WebhookDocument, check_callback_uri, merge_patch, validate_webhook,
};

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

/// Hook URIs and why each is refused: `Public` ones are accepted, `Restricted(address)` ones name
/// (in whatever spelling) an address refused unless private targets are allowed, `Refused(cause)`
/// ones are refused whatever the configuration.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    Public,
    Restricted(&'static str),
    Refused(&'static str),
}

use Verdict::{Public, Refused, Restricted};

const URIS: &[(&str, Verdict)] = &[
    ("http://hooks.example.com/a", Public),
    ("https://hooks.example.com:8443/a?b=c#d", Public),
    ("HTTPS://Hooks.Example.com/a", Public),
    ("http://localhost.example.com/a", Public),
    ("http://93.184.216.34/hook", Public),
    ("http://0x5db8d822/hook", Public),
    ("http://100.63.255.255/", Public),
    ("http://100.128.0.0/", Public),
    ("http://198.17.255.255/", Public),
    ("http://198.20.0.0/", Public),
    ("http://[2606:2800:220:1:248:1893:25c8:1946]/hook", Public),
    ("http://[2001:4860:4860::8888]/", Public),
    ("http://[2001:db9::1]/", Public),
    ("http://[3fff:1000::1]/", Public),
    ("http://[::ffff:93.184.216.34]/", Public),
    ("http://[64:ff9b::5db8:d822]/", Public),
    ("http://[2002:5db8:d822::1]/", Public),
    // Other spellings of 127.0.0.1, read as the WHATWG parser reads them.
    ("http://127.0.0.1:8080/a", Restricted("127.0.0.1")),
    ("http://2130706433/a", Restricted("127.0.0.1")),
    ("http://0x7f.0.0.1/a", Restricted("127.0.0.1")),
    ("http://0x7f000001/a", Restricted("127.0.0.1")),
    ("http://0177.0.0.1/a", Restricted("127.0.0.1")),
    ("http://127.1/a", Restricted("127.0.0.1")),
    ("http://127.0.0.1./a", Restricted("127.0.0.1")),
    ("http://%31%32%37.0.0.1/a", Restricted("127.0.0.1")),
    ("http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/a", Restricted("127.0.0.1")),
    // Every IPv4 range, at its edges.
    ("http://0.0.0.0/a", Restricted("0.0.0.0")),
    ("http://0.255.255.255/a", Restricted("0.255.255.255")),
    ("http://10.1.2.3/a", Restricted("10.1.2.3")),
    ("http://100.64.0.0/a", Restricted("100.64.0.0")),
    ("http://100.100.100.200/a", Restricted("100.100.100.200")),
    ("http://100.127.255.255/a", Restricted("100.127.255.255")),
    ("http://127.255.255.254/a", Restricted("127.255.255.254")),
    ("http://169.254.169.254/latest/meta-data/", Restricted("169.254.169.254")),
    ("http://172.16.0.1/a", Restricted("172.16.0.1")),
    ("http://172.31.255.255/a", Restricted("172.31.255.255")),
    ("http://192.0.0.8/a", Restricted("192.0.0.8")),
    ("http://192.0.2.1/a", Restricted("192.0.2.1")),
    ("http://192.88.99.1/a", Restricted("192.88.99.1")),
    ("http://192.168.1.10/a", Restricted("192.168.1.10")),
    ("http://198.18.0.0/a", Restricted("198.18.0.0")),
    ("http://198.19.255.255/a", Restricted("198.19.255.255")),
    ("http://198.51.100.7/a", Restricted("198.51.100.7")),
    ("http://203.0.113.9/a", Restricted("203.0.113.9")),
    ("http://224.0.0.1/a", Restricted("224.0.0.1")),
    ("http://239.255.255.250/a", Restricted("239.255.255.250")),
    ("http://240.0.0.1/a", Restricted("240.0.0.1")),
    ("http://255.255.255.255/a", Restricted("255.255.255.255")),
    // Every IPv6 range, and the IPv4 ones carried inside IPv6 addresses.
    ("http://[::]/a", Restricted("::")),
    ("http://[::1]/a", Restricted("::1")),
    ("http://[::ffff:127.0.0.1]/a", Restricted("::ffff:127.0.0.1")),
    ("http://[::ffff:a00:1]/a", Restricted("::ffff:10.0.0.1")),
    ("http://[::127.0.0.1]/a", Restricted("::7f00:1")),
    ("http://[::a9fe:a9fe]/a", Restricted("::a9fe:a9fe")),
    ("http://[64:ff9b::a9fe:a9fe]/a", Restricted("64:ff9b::a9fe:a9fe")),
    ("http://[64:ff9b::7f00:1]/a", Restricted("64:ff9b::7f00:1")),
    ("http://[64:ff9b:1::5db8:d822]/a", Restricted("64:ff9b:1::5db8:d822")),
    ("http://[64:ff9b:1:ffff:ffff:ffff:ffff:ffff]/a", Restricted("64:ff9b:1:ffff:ffff:ffff:ffff:ffff")),
    ("http://[100::1]/a", Restricted("100::1")),
    ("http://[2001::5db8:d822]/a", Restricted("2001::5db8:d822")),
    ("http://[2001:0:ffff:ffff::1]/a", Restricted("2001:0:ffff:ffff::1")),
    ("http://[2001:2::1]/a", Restricted("2001:2::1")),
    ("http://[2001:db8::1]/a", Restricted("2001:db8::1")),
    ("http://[2001:db8:ffff::1]/a", Restricted("2001:db8:ffff::1")),
    ("http://[3fff::1]/a", Restricted("3fff::1")),
    ("http://[3fff:fff:ffff::1]/a", Restricted("3fff:fff:ffff::1")),
    ("http://[5f00::1]/a", Restricted("5f00::1")),
    ("http://[2002:7f00:1::1]/a", Restricted("2002:7f00:1::1")),
    ("http://[2002:c0a8:101::1]/a", Restricted("2002:c0a8:101::1")),
    ("http://[fc00::1]/a", Restricted("fc00::1")),
    ("http://[fd00:ec2::254]/a", Restricted("fd00:ec2::254")),
    ("http://[fe80::1]/a", Restricted("fe80::1")),
    ("http://[febf::1]/a", Restricted("febf::1")),
    ("http://[fec0::1]/a", Restricted("fec0::1")),
    ("http://[ff02::1]/a", Restricted("ff02::1")),
    // Refused whatever the configuration.
    ("ftp://hooks.example.com/a", Refused("scheme 'ftp' is not http or https")),
    ("file:///etc/passwd", Refused("scheme 'file' is not http or https")),
    ("javascript:alert(1)", Refused("scheme 'javascript' is not http or https")),
    ("/relative/path", Refused("not an absolute URL: relative URL without a base")),
    ("hooks.example.com/a", Refused("not an absolute URL: relative URL without a base")),
    ("", Refused("not an absolute URL: relative URL without a base")),
    ("http:///a", Refused("is not written scheme://host")),
    ("http:/hooks.example.com/a", Refused("is not written scheme://host")),
    ("http:hooks.example.com/a", Refused("is not written scheme://host")),
    ("http://", Refused("not an absolute URL: empty host")),
    ("http:\\\\hooks.example.com\\a", Refused("contains whitespace, control characters or backslashes")),
    ("http://hooks.example.com\\@127.0.0.1/a", Refused("contains whitespace, control characters or backslashes")),
    ("http://[::1/a", Refused("not an absolute URL: invalid IPv6 address")),
    ("http://256.0.0.1/a", Refused("not an absolute URL: invalid IPv4 address")),
    ("http://1.2.3.4.5/a", Refused("not an absolute URL: invalid IPv4 address")),
    ("https://user:secret@hooks.example.com/a", Refused("carries credentials")),
    ("https://user@hooks.example.com/a", Refused("carries credentials")),
    ("https://hooks.example.com/a b", Refused("contains whitespace, control characters or backslashes")),
    (" https://hooks.example.com/a", Refused("contains whitespace, control characters or backslashes")),
    ("https://hooks.example.com/a\n", Refused("contains whitespace, control characters or backslashes")),
    ("https://localhost/a", Refused("host 'localhost' is blacklisted")),
    ("https://LOCALHOST./a", Refused("host 'localhost' is blacklisted")),
    ("http://api.localhost/a", Refused("host 'api.localhost' is blacklisted")),
];

#[test]
fn every_hostile_uri_is_refused_with_its_reason_and_public_ones_accepted() {
    for &(uri, verdict) in URIS {
        for caller in [RESELLER, PRIVATE_OK] {
            let result = validate_as(caller, hook_with(json!({"uri": uri})));
            let cause = match verdict {
                Public => None,
                Restricted(_) if caller.allow_private_targets => None,
                Restricted(address) => Some(format!("address {address} is not a public address")),
                Refused(cause) => Some(cause.to_owned()),
            };
            match (cause, result) {
                // Stored as the client wrote it.
                (None, Ok(document)) => assert_eq!(document.uri(), uri),
                (Some(cause), Err(errors)) => assert_eq!(
                    errors.into_json(),
                    json!({"uri": {"error": {"message": "invalid client URL", "cause": cause, "value": uri}}}),
                    "for {uri}"
                ),
                (cause, result) => panic!(
                    "{uri:?} (private allowed: {}): expected refusal {cause:?}, got {result:?}",
                    caller.allow_private_targets
                ),
            }
        }
    }
}

#[test]
fn the_uri_check_gives_the_normalized_url() {
    let url = check_callback_uri("http://0x7f.1:8080/a", true).expect("private targets allowed");
    assert_eq!(url.as_str(), "http://127.0.0.1:8080/a");
    assert!(check_callback_uri("http://10.0.0.1/", true).is_ok());
}

#[test]
fn strings_of_a_hook_are_bounded() {
    let uri_of = |length: usize| {
        let base = "https://hooks.example.com/";
        format!("{base}{}", "a".repeat(length - base.len()))
    };
    accepted(hook_with(json!({"uri": uri_of(2048)})));
    for length in [2049, 100_000] {
        assert_eq!(
            refused(hook_with(json!({"uri": uri_of(length)}))),
            json!({"uri": {"maxLength": {"message": "String must not be more than 2048 characters", "target": 2048}}}),
        );
    }
    // Characters, not bytes.
    accepted(hook_with(json!({"name": "é".repeat(128)})));
    assert_eq!(
        refused(hook_with(json!({"name": "n".repeat(129)}))),
        json!({"name": {"maxLength": {"message": "String must not be more than 128 characters", "target": 128}}}),
    );

    let name = "X-".to_owned() + &"n".repeat(254);
    accepted(hook_with(json!({"custom_request_headers": {name.clone(): "v".repeat(4096)}})));
    let long_name = name.clone() + "n";
    assert_eq!(
        refused(hook_with(json!({"custom_request_headers": {long_name.clone(): "v"}}))),
        json!({format!("custom_request_headers.{long_name}"): {"maxLength": {
            "message": "Invalid HTTP header name: must not be more than 256 characters", "target": 256}}}),
    );
    assert_eq!(
        refused(hook_with(json!({"custom_request_headers": {"X-Long": "v".repeat(4097)}}))),
        json!({"custom_request_headers.X-Long": {"maxLength": {
            "message": "String must not be more than 4096 characters", "target": 4096}}}),
    );
    let headers =
        |count: usize| -> Map<String, Value> { (0..count).map(|index| (format!("X-H{index}"), json!("v"))).collect() };
    accepted(hook_with(json!({"custom_request_headers": headers(32)})));
    assert_eq!(
        refused(hook_with(json!({"custom_request_headers": headers(33)}))),
        json!({"custom_request_headers": {"maxProperties": {
            "message": "Object must not have more than 32 properties", "target": 32}}}),
    );
}

#[test]
fn custom_request_headers_are_checked() {
    let document = accepted(hook_with(json!({"custom_request_headers": {"Authorization": "Bearer abc",
                                                                        "X-Tenant": "acme\tcorp"}})));
    assert_eq!(
        document.custom_request_headers(),
        Some(&object(json!({"Authorization": "Bearer abc", "X-Tenant": "acme\tcorp"})))
    );

    let reserved = json!([
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "x-hook-id",
        "x-account-id",
        "x-event-id",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature"
    ]);
    for name in [
        "Host",
        "content-length",
        "Content-Type",
        "TRANSFER-ENCODING",
        "Connection",
        "X-Hook-ID",
        "x-account-id",
        "X-Event-Id",
        "webhook-id",
        "Webhook-Timestamp",
        "webhook-signature",
    ] {
        assert_eq!(
            refused(hook_with(json!({"custom_request_headers": {name: "x"}}))),
            json!({format!("custom_request_headers.{name}"): {"reserved": {
                "message": "Header is set by the server and cannot be overridden",
                "target": reserved, "value": name}}}),
            "for {name}"
        );
    }

    for name in ["", "Bad Header", "X-Föö", "X:Y", "(x)"] {
        assert_eq!(
            refused(hook_with(json!({"custom_request_headers": {name: "x"}}))),
            json!({format!("custom_request_headers.{name}"): {"pattern": {
                "message": "Invalid HTTP header name", "target": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", "value": name}}}),
            "for {name:?}"
        );
    }

    assert_eq!(
        refused(hook_with(json!({"custom_request_headers": {"X-Evil": "a\r\nHost: other"}}))),
        json!({"custom_request_headers.X-Evil": {"pattern": {
            "message": "Invalid HTTP header value: control characters are not allowed", "value": "a\r\nHost: other"}}})
    );
    assert_eq!(
        refused(hook_with(json!({"custom_request_headers": {"X-Count": 5, "X.Dotted": ["a"]}}))),
        json!({
            "custom_request_headers.X-Count": {"type": {"message": "Value did not match type(s): string",
                                                        "target": "string", "value": 5}},
            "custom_request_headers.X%2EDotted": {"type": {"message": "Value did not match type(s): string",
                                                           "target": "string", "value": ["a"]}},
        })
    );
    assert_eq!(
        refused(hook_with(json!({"custom_request_headers": ["X-A: b"]})))["custom_request_headers"]["type"]["target"],
        json!("object")
    );
}

fn object_hook(custom_data: Value) -> Value {
    hook_with(json!({"hook": "object", "custom_data": custom_data}))
}

fn notifications_hook(notification_type: &str) -> Value {
    hook_with(json!({"hook": "notifications", "custom_data": {"type": notification_type}}))
}

#[test]
fn object_hooks_need_valid_type_and_action_modifiers() {
    let object_types = json!([
        "all",
        "account",
        "callflow",
        "device",
        "faxbox",
        "media",
        "user",
        "vmbox",
        "fax",
        "mailbox_message",
        "call_recording"
    ]);
    let actions = json!(["all", "doc_created", "doc_edited", "doc_deleted"]);

    accepted(object_hook(json!({"type": "user", "action": "doc_created", "extra": "copied"})));
    accepted(object_hook(json!({"type": "all", "action": "all"})));

    let missing = json!({"message": "missing required modifier"});
    assert_eq!(
        refused(hook_with(json!({"hook": "object"}))),
        json!({"custom_data.type": {"required": missing}, "custom_data.action": {"required": missing}})
    );
    assert_eq!(refused(object_hook(json!({"type": "user"}))), json!({"custom_data.action": {"required": missing}}));
    assert_eq!(
        refused(object_hook(json!({"type": "queue", "action": "doc_renamed"}))),
        json!({
            "custom_data.type": {"enum": {"message": "value not found in enumerated list of values",
                                          "cause": "queue", "target": object_types}},
            "custom_data.action": {"enum": {"message": "value not found in enumerated list of values",
                                            "cause": "doc_renamed", "target": actions}},
        })
    );
}

#[test]
fn notification_types_are_checked_and_restricted_ones_refused_to_non_admins() {
    let definitions: Value =
        serde_json::from_str(include_str!("../../data/hook-definitions.json")).expect("the definitions are JSON");
    let all_types: Vec<String> =
        definitions[2]["modifiers"]["type"]["items"].as_object().expect("notification types").keys().cloned().collect();
    let visible: Vec<String> =
        all_types.iter().filter(|name| *name != "system_alert" && *name != "webhook_disabled").cloned().collect();
    assert_eq!(all_types.len(), visible.len() + 2);

    let unknown = |target: &[String], cause: &str| {
        json!({"custom_data.type": {"enum": {"message": "value not found in enumerated list of values",
                                             "cause": cause, "target": target}}})
    };
    assert_eq!(refused_as(RESELLER, notifications_hook("fax_sent")), unknown(&visible, "fax_sent"));
    assert_eq!(refused_as(ADMIN, notifications_hook("fax_sent")), unknown(&all_types, "fax_sent"));

    // Unlike Kazoo, the restriction is enforced, not only cosmetic.
    for restricted in ["system_alert", "webhook_disabled"] {
        assert_eq!(refused_as(RESELLER, notifications_hook(restricted)), unknown(&visible, restricted));
        validate_as(ADMIN, notifications_hook(restricted)).expect("an admin may subscribe");
    }
    accepted(notifications_hook("voicemail_new"));
    accepted(notifications_hook("all"));
    assert_eq!(
        refused(hook_with(json!({"hook": "notifications", "custom_data": {}}))),
        json!({"custom_data.type": {"required": {"message": "missing required modifier"}}})
    );
}

#[test]
fn hooks_without_modifiers_and_the_all_hook_take_any_custom_data() {
    accepted(hook_with(json!({"hook": "all", "custom_data": {"type": "anything", "action": "at all"}})));
    accepted(hook_with(json!({"hook": "all"})));
    for hook in ["channel_answer", "channel_bridge", "channel_destroy", "parking", "sms", "mms"] {
        accepted(hook_with(json!({"hook": hook, "custom_data": {"type": "whatever"}})));
    }
}

#[test]
fn modifiers_are_only_checked_once_the_schema_passed() {
    assert_eq!(
        refused(hook_with(json!({"hook": "object", "http_verb": "delete"}))),
        json!({"http_verb": {"enum": {"message": "Value not found in enumerated list of values",
                                      "target": ["get", "post", "put"], "value": "delete"}}})
    );
    let uri_only = refused(hook_with(json!({"hook": "object", "uri": "http://10.0.0.1/"})));
    assert_eq!(uri_only.as_object().map(Map::len), Some(1), "got {uri_only}");
}

#[test]
fn patch_replaces_top_level_keys_whole_and_null_removes() {
    let stored = object(json!({"name": "n", "uri": "https://a.example/", "hook": "object", "enabled": false,
                               "custom_data": {"type": "user", "action": "all", "tag": "t"}, "group": "g"}));
    let patch = object(json!({"enabled": true, "custom_data": {"type": "device", "action": "all"}, "group": null,
                              "ui_metadata": {"v": 1}, "gone": null}));
    let merged = merge_patch(&stored, &patch);
    assert_eq!(
        serde_json::to_string(&merged).expect("serializes"),
        serde_json::to_string(&json!({"name": "n", "uri": "https://a.example/", "hook": "object", "enabled": true,
                                      "custom_data": {"type": "device", "action": "all"},
                                      "ui_metadata": {"v": 1}}))
        .expect("serializes")
    );
    assert_eq!(merge_patch(&stored, &Map::new()), stored);

    // The merged document is then validated like any other, defaults refilled.
    let document = accepted(Value::Object(merge_patch(&stored, &object(json!({"retries": null})))));
    assert_eq!(document.retries(), 2);
}

#[test]
fn http_verb_and_format_parse_case_insensitively() {
    assert_eq!("GET".parse::<HttpVerb>(), Ok(HttpVerb::Get));
    assert_eq!("put".parse::<HttpVerb>(), Ok(HttpVerb::Put));
    assert!("delete".parse::<HttpVerb>().is_err());
    assert_eq!(HttpVerb::Post.to_string(), "post");
    assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
    assert_eq!("form-data".parse::<Format>(), Ok(Format::FormData));
    assert!("xml".parse::<Format>().is_err());
    assert_eq!(Format::FormData.to_string(), "form-data");
}

#[test]
fn signing_secrets_are_write_only_and_checked_for_the_standard_webhooks_shape() {
    use webhooks_model::webhook::SecretChange;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let document = accepted(hook_with(json!({"signing_secret": secret, "signed": false})));
    assert_eq!(document.signing_secret(), &SecretChange::Set(secret.to_owned()));
    assert!(!document.fields().contains_key("signing_secret"), "the secret is never part of the document");
    assert!(!document.fields().contains_key("signed"), "signed is read-only");
    assert_eq!(accepted(hook_with(json!({}))).signing_secret(), &SecretChange::Keep);
    assert_eq!(accepted(hook_with(json!({"signing_secret": null}))).signing_secret(), &SecretChange::Remove);
    assert!(!format!("{:?}", document.signing_secret()).contains("MfKQ"), "Debug hides the secret");

    let too_short = format!("whsec_{}", "QUJD"); // 3 bytes
    for bad in [json!("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), json!(too_short), json!("whsec_not base64!"), json!(5)] {
        let errors = refused(hook_with(json!({"signing_secret": bad})));
        let rule = errors["signing_secret"].as_object().expect("a signing_secret error");
        assert!(rule.contains_key("pattern") || rule.contains_key("type"), "{errors}");
        assert!(!errors.to_string().contains("MfKQ"), "errors never echo a secret");
    }

    let stored = object(json!({"name": "n", "uri": "https://a.example/", "hook": "channel_create"}));
    let merged = merge_patch(&stored, &object(json!({"signing_secret": null})));
    assert_eq!(merged.get("signing_secret"), Some(&Value::Null), "a PATCH can remove the secret");
}
