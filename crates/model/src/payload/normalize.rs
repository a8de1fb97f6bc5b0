//! Kazoo's JSON normalization (docs/kazoo.md#normalization), used for notification, parking and
//! callflow payloads.

use serde_json::{Map, Value};

/// A wire key as payloads spell it: ASCII and Latin-1 capitals lower-cased, `-` replaced by `_`
/// (`Call-ID` becomes `call_id`).
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .map(|character| match character {
            'A'..='Z' => character.to_ascii_lowercase(),
            // Latin-1 capitals sit 0x20 below their lower-case forms; 0xD7 (×) is not a letter.
            '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{DE}' => {
                char::from_u32(u32::from(character) + 0x20).unwrap_or(character)
            }
            '-' => '_',
            other => other,
        })
        .collect()
}

/// A normalized copy of `object`: keys renamed by [`normalize_key`] and keys whose value is `null`
/// dropped, recursively.
pub fn normalize_object(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (normalize_key(key), normalize_value(value)))
        .collect()
}

/// A normalized copy of any JSON value: objects as in [`normalize_object`], arrays element by
/// element (a `null` element is kept, as Kazoo only drops keys), scalars unchanged.
pub fn normalize_value(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(normalize_object(object)),
        Value::Array(items) => Value::Array(items.iter().map(normalize_value).collect()),
        scalar => scalar.clone(),
    }
}
