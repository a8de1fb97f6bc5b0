//! The normalisation every payload goes through: keys lower-cased with underscores, nulls dropped.

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
