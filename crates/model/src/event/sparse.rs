//! Reading only some fields of a JSON object: the others are skipped without being built.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// The fields of the JSON object `body` named in `keep`, in the body's order (the last of a
/// repeated field wins, as when the whole object is read).
pub(super) fn read_object(body: &[u8], keep: &[&str]) -> serde_json::Result<Map<String, Value>> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let fields = deserializer.deserialize_map(Fields(keep))?;
    deserializer.end()?;
    Ok(fields)
}

/// Visits an object, keeping the fields it names.
struct Fields<'k>(&'k [&'k str]);

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            if self.0.contains(&key.as_ref()) {
                fields.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(fields)
    }
}

/// An object key, borrowed from the body unless it had escapes to undo.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor).map(Key)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_named_fields_are_kept_in_body_order_and_the_last_repeat_wins() {
        let body = br#"{"b": [1, {"x": 2}], "skip": {"deep": [1, 2, {"y": null}]}, "a\u0041": "esc", "a": 1, "a": 2}"#;
        let fields = read_object(body, &["a", "b", "aA"]).expect("an object");
        assert_eq!(Value::Object(fields), json!({"b": [1, {"x": 2}], "aA": "esc", "a": 2}));
    }

    #[test]
    fn what_is_not_one_json_object_is_refused() {
        for body in [&b"[1]"[..], b"\"x\"", b"{\"a\": 1", b"{\"a\": 1} {}", b"{\"skip\": [}"] {
            assert!(read_object(body, &["a"]).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
