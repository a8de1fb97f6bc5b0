//! Single fields: string bounds, custom request headers, verbs and formats, signing secrets, and
//! PATCH's merge.

use serde_json::{Map, Value, json};
use webhooks_model::webhook::{Format, HttpVerb, merge_patch};

use super::{accepted, hook_with, object, refused};

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
