//! The payload of delivery jobs, shared by the jobs of one event that receive the same.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A finished payload. The jobs of one event whose hooks receive the same payload share it, so
/// that it is built, carried on the bus, read and encoded once for all of them.
///
/// Read off the bus, it stays the JSON text it arrived as: that text is a JSON hook's body, and
/// its fields are parsed only when something asks for them (a form hook, a test).
#[derive(Clone)]
pub struct Payload(Arc<Forms>);

/// The forms of a payload: at least one of `fields` and `json` is set, and the other is derived
/// from it on first use.
#[derive(Default)]
struct Forms {
    fields: OnceLock<Map<String, Value>>,
    /// `None` only if the fields could not be written, which a map of JSON values cannot cause.
    json: OnceLock<Option<Box<RawValue>>>,
    call_id: OnceLock<Option<Box<str>>>,
}

impl Payload {
    /// Its fields.
    pub fn fields(&self) -> &Map<String, Value> {
        self.0.fields.get_or_init(|| {
            // The text was checked to be a JSON object when it was read.
            let json = self.0.json.get().and_then(Option::as_deref);
            json.and_then(|json| serde_json::from_str(json.get()).ok()).unwrap_or_default()
        })
    }

    /// Its JSON text, exactly as `serde_json` writes its fields.
    pub fn json(&self) -> &str {
        let json = self.0.json.get_or_init(|| serde_json::value::to_raw_value(self.fields()).ok());
        json.as_deref().map_or("{}", RawValue::get)
    }

    /// Its top-level `call_id`, for logs: read from the JSON text without parsing the rest.
    pub fn call_id(&self) -> Option<&str> {
        if let Some(fields) = self.0.fields.get() {
            return fields.get("call_id").and_then(Value::as_str);
        }
        #[derive(Deserialize)]
        struct CallId {
            call_id: Option<Box<str>>,
        }
        let read = || serde_json::from_str::<CallId>(self.json()).ok().and_then(|only| only.call_id);
        self.0.call_id.get_or_init(read).as_deref()
    }

    /// Whether `self` and `other` are the same shared payload (not merely equal ones).
    pub fn ptr_eq(&self, other: &Payload) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address identifying this shared payload while it lives.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).addr()
    }
}

impl From<Map<String, Value>> for Payload {
    fn from(fields: Map<String, Value>) -> Self {
        Self(Arc::new(Forms { fields: OnceLock::from(fields), ..Forms::default() }))
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self::from(Map::new())
    }
}

impl Deref for Payload {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        self.fields()
    }
}

impl AsRef<Map<String, Value>> for Payload {
    fn as_ref(&self) -> &Map<String, Value> {
        self.fields()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.ptr_eq(other) || self.fields() == other.fields()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fields().fmt(formatter)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Text read off the bus goes out as it came, without being parsed.
        match self.0.json.get().and_then(Option::as_deref) {
            Some(json) => json.serialize(serializer),
            None => self.fields().serialize(serializer),
        }
    }
}

/// Reads a payload as its JSON text, which must be an object.
impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        if !json.get().starts_with('{') {
            return Err(de::Error::invalid_type(
                de::Unexpected::Other("a JSON value other than an object"),
                &"a payload object",
            ));
        }
        Ok(Self(Arc::new(Forms { json: OnceLock::from(Some(json)), ..Forms::default() })))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_payload_read_off_the_bus_keeps_its_text_and_parses_its_fields_on_demand() {
        let text = r#"{"call_id":"c1","n":1.5,"nested":{"a":[1,"\u00e9"]}}"#;
        let payload: Payload = serde_json::from_str(text).expect("a payload");
        assert_eq!(payload.json(), text);
        assert_eq!(payload.call_id(), Some("c1"));
        assert_eq!(serde_json::to_string(&payload).expect("JSON"), text, "written back as it came");
        assert_eq!(
            Value::Object(payload.fields().clone()),
            json!({"call_id": "c1", "n": 1.5, "nested": {"a": [1, "é"]}})
        );

        let built = Payload::from(payload.fields().clone());
        assert_eq!(built, payload);
        assert_eq!(built.json(), r#"{"call_id":"c1","n":1.5,"nested":{"a":[1,"é"]}}"#);
        assert_eq!(built.call_id(), Some("c1"));
        assert_eq!(Payload::default().call_id(), None);

        for other in ["[1]", "\"text\"", "7", "null"] {
            assert!(serde_json::from_str::<Payload>(other).is_err(), "{other} is not a payload");
        }
    }
}
