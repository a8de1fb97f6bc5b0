//! Where and how a hook's callouts go: its URI, verb, body format, retries and extra headers,
//! read once from the stored document into the [`DeliveryTarget`] that the API validates into,
//! the router indexes and every delivery job carries.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::uri::CallbackUri;
use crate::retry::MAX_RETRIES;

/// How a webhook calls its URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpVerb {
    /// Payload as query string.
    Get,
    /// Payload as body (the default).
    #[default]
    Post,
    /// Payload as body.
    Put,
}

impl HttpVerb {
    /// The lower-case name stored in documents and attempt records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
        }
    }
}

impl fmt::Display for HttpVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not `get`, `post` or `put`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not one of get, post, put")]
pub struct UnknownHttpVerb(pub String);

impl FromStr for HttpVerb {
    type Err = UnknownHttpVerb;

    /// Case-insensitive, as Kazoo's runtime reads stored documents (docs/kazoo.md#runtime-reading);
    /// the schema itself only admits lower case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "get" => Ok(Self::Get),
            "post" => Ok(Self::Post),
            "put" => Ok(Self::Put),
            _ => Err(UnknownHttpVerb(text.to_owned())),
        }
    }
}

/// How a POST or PUT body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `application/x-www-form-urlencoded` (the default).
    #[default]
    #[serde(rename = "form-data")]
    FormData,
    /// `application/json`.
    Json,
}

impl Format {
    /// The name stored in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FormData => "form-data",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not `form-data` or `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not one of form-data, json")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Case-insensitive, as Kazoo's runtime reads stored documents (docs/kazoo.md#runtime-reading).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "form-data" => Ok(Self::FormData),
            "json" => Ok(Self::Json),
            _ => Err(UnknownFormat(text.to_owned())),
        }
    }
}

/// Schema default of `retries`, used when a stored document lacks a usable one.
const DEFAULT_RETRIES: u8 = 2;

/// Where and how a hook's callouts go.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryTarget {
    /// The callback URL.
    pub uri: CallbackUri,
    /// How the URI is called.
    pub http_verb: HttpVerb,
    /// How a POST or PUT body is encoded.
    pub format: Format,
    /// Retries after the first attempt (0..=4; Kazoo's runtime counted attempts instead).
    pub retries: u8,
    /// Extra request headers sent with every callout (name to string value); `None` when the hook
    /// sets none. Boxed: most hooks set none, and the router keeps every hook in memory.
    pub custom_request_headers: Option<Box<Map<String, Value>>>,
}

impl DeliveryTarget {
    /// The target of a stored hook document, read as Kazoo's runtime reads it
    /// (docs/kazoo.md#runtime-reading): verb and format case-insensitively, `retries` as a number
    /// or a numeric string clamped to the schema's range, the schema defaults for anything else.
    pub fn from_document(document: &Map<String, Value>) -> Self {
        let text = |key: &str| document.get(key).and_then(Value::as_str);
        Self {
            uri: CallbackUri::new(text("uri").unwrap_or_default()),
            http_verb: text("http_verb").and_then(|verb| verb.parse().ok()).unwrap_or_default(),
            format: text("format").and_then(|format| format.parse().ok()).unwrap_or_default(),
            retries: document_retries(document.get("retries")),
            custom_request_headers: document
                .get("custom_request_headers")
                .and_then(Value::as_object)
                .filter(|headers| !headers.is_empty())
                .map(|headers| Box::new(headers.clone())),
        }
    }
}

/// `retries` of a stored hook document: a number (or the numeric string of older documents)
/// clamped to the schema's range, else the schema default.
fn document_retries(value: Option<&Value>) -> u8 {
    let number = match value {
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    number.map_or(DEFAULT_RETRIES, |retries| u8::try_from(retries).unwrap_or(MAX_RETRIES).min(MAX_RETRIES))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn target(document: Value) -> DeliveryTarget {
        DeliveryTarget::from_document(document.as_object().expect("an object"))
    }

    #[test]
    fn a_stored_document_is_read_as_kazoos_runtime_reads_it() {
        let read = target(json!({"uri": "https://new.example.com/in", "http_verb": "PUT", "format": "json",
                                 "retries": "3", "custom_request_headers": {"X-New": "2"}}));
        let expected = DeliveryTarget {
            uri: "https://new.example.com/in".into(),
            http_verb: HttpVerb::Put,
            format: Format::Json,
            retries: 3,
            custom_request_headers: json!({"X-New": "2"}).as_object().cloned().map(Box::new),
        };
        assert_eq!(read, expected);
    }

    #[test]
    fn missing_or_odd_fields_fall_back_to_the_schema_defaults() {
        let read = target(json!({"http_verb": "delete", "format": 1, "custom_request_headers": {}}));
        assert_eq!(
            (read.uri.as_str(), read.http_verb, read.format, read.retries),
            ("", HttpVerb::Post, Format::FormData, 2)
        );
        assert_eq!(read.custom_request_headers, None);
        assert_eq!(document_retries(Some(&json!(200))), MAX_RETRIES);
        assert_eq!(document_retries(Some(&json!(true))), DEFAULT_RETRIES);
    }
}
