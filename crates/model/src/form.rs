//! Form encoding of payloads for `form-data` hooks and GET query strings
//! (docs/kazoo.md#form-encoding).
//!
//! Kazoo's shape is kept (nested keys as `parent[child]`, arrays as `key[]`, payload key order,
//! values encoded with `+` for space); its defects are fixed: keys are percent-encoded except
//! `[` and `]`, empty objects/arrays and `null`s produce nothing (no stray `&`), and GET joins with
//! `&` when the URI already has a query string.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The `application/x-www-form-urlencoded` form of a payload.
pub fn encode(payload: &Map<String, Value>) -> String {
    let mut form = String::new();
    let mut name = String::new();
    for (key, value) in payload {
        name.clear();
        escape_into(&mut name, key, KeepBrackets::Yes);
        encode_pair(&mut form, &name, value);
    }
    form
}

/// The URL of a GET callout: `uri` with the encoded payload as its query string, joined with `&`
/// when `uri` already has one and placed before any fragment.
pub fn url_with_query(uri: &str, payload: &Map<String, Value>) -> String {
    join_query(uri, &encode(payload))
}

/// [`url_with_query`] of a payload already encoded as `query`.
pub fn join_query(uri: &str, query: &str) -> String {
    if query.is_empty() {
        return uri.to_owned();
    }
    let (base, fragment) = uri.split_at(uri.find('#').unwrap_or(uri.len()));
    let separator = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base}{separator}{query}{fragment}")
}

/// Whether `[` and `]` survive escaping: they do in keys (they are the nesting syntax) and are
/// escaped in values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeepBrackets {
    Yes,
    No,
}

/// Emits the pairs of `value` under the already-escaped `name`.
fn encode_pair(form: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(flag) => push_pair(form, name, if *flag { "true" } else { "false" }),
        Value::Number(number) => push_pair(form, name, &number.to_string()),
        Value::String(text) => push_pair(form, name, text),
        Value::Object(members) => {
            for (key, member) in members {
                let mut child = String::with_capacity(name.len() + key.len() + 2);
                child.push_str(name);
                child.push('[');
                escape_into(&mut child, key, KeepBrackets::Yes);
                child.push(']');
                encode_pair(form, &child, member);
            }
        }
        Value::Array(items) => {
            let child = format!("{name}[]");
            for item in items {
                match item {
                    // Structures inside arrays are sent as JSON text, as Kazoo does.
                    Value::Object(_) | Value::Array(_) => push_pair(form, &child, &item.to_string()),
                    scalar => encode_pair(form, &child, scalar),
                }
            }
        }
    }
}

/// Appends `name=<escaped value>`, with a separator only between pairs.
fn push_pair(form: &mut String, name: &str, value: &str) {
    if !form.is_empty() {
        form.push('&');
    }
    form.push_str(name);
    form.push('=');
    escape_into(form, value, KeepBrackets::No);
}

/// Kazoo's value escaping: `A-Z a-z 0-9 . - ~ _` kept, space as `+`, every other UTF-8 byte as
/// `%XX` in upper-case hex.
fn escape_into(out: &mut String, text: &str, brackets: KeepBrackets) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'~' | b'_' => out.push(char::from(byte)),
            b'[' | b']' if brackets == KeepBrackets::Yes => out.push(char::from(byte)),
            b' ' => out.push('+'),
            // Writing to a String cannot fail.
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
}
