//! How the loosely typed fields of Kazoo's messages are read: strings that may arrive as numbers,
//! numbers as strings, flags as text, and optional ids and objects.

use serde_json::{Map, Number, Value};

use super::EventError;
use crate::ids::AccountId;

/// A field that must be a non-empty JSON string to count (envelope fields, names).
pub(super) fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str).filter(|value| !value.is_empty())
}

/// A string field as Kazoo reads it: numbers and booleans become their text; empty strings,
/// `null` and structures count as absent.
pub(super) fn string_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(string_value)
}

/// See [`string_field`].
pub(super) fn string_value(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// An integer field: numbers, and numeric strings such as `"31"` (real traffic has carried
/// `Duration-Seconds` that way); fractional values are rounded like Kazoo's `to_integer`.
pub(super) fn integer_value(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| float_to_integer(number.as_f64()?)),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<i64>().ok().or_else(|| float_to_integer(text.parse::<f64>().ok()?))
        }
        _ => None,
    }
}

/// Rounds a float to an integer when it is finite and within range.
fn float_to_integer(value: f64) -> Option<i64> {
    let rounded = value.round();
    // i64::MAX as f64 rounds up to 2^63, so compare with a strict bound.
    (rounded.is_finite() && rounded >= i64::MIN as f64 && rounded < i64::MAX as f64).then_some(rounded as i64)
}

/// A number field: JSON numbers as-is, numeric strings converted.
pub(super) fn number_value(value: &Value) -> Option<Number> {
    match value {
        Value::Number(number) => Some(number.clone()),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<i64>().ok().map(Number::from).or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
        }
        _ => None,
    }
}

/// Kazoo's truthiness for flags that arrive as booleans or as `"true"`.
pub(super) fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The account id of a message's `field`: none when absent, `null` or empty (an event of no
/// account, such as the carrier leg of an inbound call); an error when it is not a string
/// (malformed) or not of Kazoo's id shape (it names no account).
pub(super) fn account_id_field(value: Option<&Value>, field: &'static str) -> Result<Option<AccountId>, EventError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => text.parse().map(Some).map_err(|_| EventError::UnknownAccountId(text.clone())),
        Some(_) => Err(EventError::InvalidField { field, reason: "not a string" }),
    }
}

/// `Custom-Channel-Vars`: none when absent or `null`; an error when not an object.
pub(super) fn channel_vars(value: Option<&Value>) -> Result<Option<&Map<String, Value>>, EventError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(ccvs)) => Ok(Some(ccvs)),
        Some(_) => Err(EventError::InvalidField { field: "Custom-Channel-Vars", reason: "not an object" }),
    }
}
