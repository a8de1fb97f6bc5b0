//! The request body envelope `{"data": ...}` as handlers see it.

use std::future::{Ready, ready};
use std::sync::{Arc, OnceLock};

use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use serde_json::{Map, Value, json};
use webhooks_model::errors::ValidationErrors;

use super::error::ApiError;
use super::request::Body;

/// The parsed request body. Extraction never fails, so that method, identifier and permission
/// checks come before body errors, as in Crossbar.
#[derive(Debug, Clone)]
pub struct Envelope {
    body: Body,
    /// An array body's value, parsed on first use (or why it is not JSON).
    array: OnceLock<Result<Value, String>>,
}

impl Envelope {
    /// `data` as an object, or the error Crossbar gives for a missing or malformed body.
    pub fn data_object(&self) -> Result<&Map<String, Value>, ApiError> {
        match self.data()? {
            Some(Value::Object(fields)) => Ok(fields),
            Some(_) => Err(ApiError::Validation(ValidationErrors::single(
                "data",
                "type",
                json!({"message": "Value did not match type(s): object", "target": "object"}),
            ))),
            None => Err(ApiError::Validation(ValidationErrors::single(
                "data",
                "required",
                json!({"message": "the request body must be a JSON object with a 'data' member"}),
            ))),
        }
    }

    /// `data` when present; an error only for a body that is not JSON or not an envelope.
    pub fn data(&self) -> Result<Option<&Value>, ApiError> {
        match self.json()? {
            None => Ok(None),
            Some(Value::Object(envelope)) => Ok(envelope.get("data")),
            Some(_) => Err(ApiError::Validation(ValidationErrors::single(
                "data",
                "required",
                json!({"message": "the request body must be a JSON object with a 'data' member"}),
            ))),
        }
    }

    /// The whole body when there is one; an error for a body that is not JSON.
    pub fn json(&self) -> Result<Option<&Value>, ApiError> {
        match &self.body {
            Body::Empty => Ok(None),
            Body::Invalid(reason) => Err(ApiError::InvalidJson(reason.clone())),
            Body::Json(value) => Ok(Some(value.as_ref())),
            Body::Array(text) => match self.array.get_or_init(|| parse(text)) {
                Ok(value) => Ok(Some(value)),
                Err(reason) => Err(ApiError::InvalidJson(reason.clone())),
            },
        }
    }

    /// [`Envelope::json`], owned: the parsed body itself, for a handler that passes it on.
    pub fn into_json(self) -> Result<Option<Value>, ApiError> {
        match self.body {
            Body::Empty => Ok(None),
            Body::Invalid(reason) => Err(ApiError::InvalidJson(reason)),
            Body::Json(value) => Ok(Some(Arc::unwrap_or_clone(value))),
            Body::Array(text) => {
                self.array.into_inner().unwrap_or_else(|| parse(&text)).map(Some).map_err(ApiError::InvalidJson)
            }
        }
    }

    /// The body's text when it is a JSON array (not yet checked to be JSON): a handler that reads
    /// the items one by one need not build the whole value.
    pub fn array_text(&self) -> Option<&Bytes> {
        match &self.body {
            Body::Array(text) => Some(text),
            _ => None,
        }
    }
}

/// A body's value, or the parser's message.
fn parse(text: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(text).map_err(|error| error.to_string())
}

impl FromRequest for Envelope {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Taken, not copied: the handler is its only reader, and may keep it.
        let body = request.extensions_mut().remove::<Body>().unwrap_or(Body::Empty);
        ready(Ok(Self { body, array: OnceLock::new() }))
    }
}
