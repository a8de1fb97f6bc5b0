//! The one error type of the API, rendered in Crossbar's error envelope.

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};
use webhooks_model::errors::ValidationErrors;
use webhooks_storage::StorageError;

use super::envelope::render;

/// Everything that can go wrong while serving a request, each with Crossbar's status, message and
/// `data`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials on a protected path.
    #[error("no credentials")]
    MissingCredentials,
    /// A token was sent but is unknown, expired, forged or belongs to a removed account.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Authenticated but not allowed on this account or path.
    #[error("forbidden")]
    Forbidden,
    /// The path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods the path allows, for the `Allow` header.
        allow: &'static str,
    },
    /// No such path.
    #[error("not found")]
    NotFound,
    /// The account id in the URL is not 32 lowercase hex characters.
    #[error("invalid account id {0}")]
    BadAccountId(String),
    /// An identifier (account, hook, sample) that names nothing.
    #[error("unknown identifier {0}")]
    BadIdentifier(String),
    /// The request failed validation.
    #[error("{0}")]
    Validation(ValidationErrors),
    /// The body is not valid JSON.
    #[error("invalid json: {0}")]
    InvalidJson(String),
    /// The body is larger than the configured limit.
    #[error("request body over {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A bad `page_size` (Kazoo answers these with 404 `faulty_request`).
    #[error("{0}")]
    FaultyRequest(&'static str),
    /// The document changed since it was read.
    #[error("conflicting documents")]
    Conflict,
    /// A request Crossbar refuses for a reason of its own (`message`, `data.message`).
    #[error("{message}")]
    Refused {
        /// The envelope message.
        message: &'static str,
        /// Why, for `data.message`.
        reason: String,
    },
    /// A service this request needs (the message bus) is unreachable; nothing was done.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The database could not be reached; nothing was done, and the client may retry.
    #[error("the database is unreachable")]
    DatastoreUnreachable,
    /// The store failed.
    #[error("storage failure")]
    Storage(#[source] StorageError),
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict => Self::Conflict,
            StorageError::HasChildren(_) => Self::Refused {
                message: "account has descendants",
                reason: "delete the sub-accounts of this account first".into(),
            },
            StorageError::UnknownParent(id) => Self::BadIdentifier(id),
            StorageError::InvalidStartKey => Self::Validation(ValidationErrors::single(
                "start_key",
                "type",
                json!({"message": "start_key is not one this server issued"}),
            )),
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "request refused: the database is unreachable");
                Self::DatastoreUnreachable
            }
            other => Self::Storage(other),
        }
    }
}

impl ApiError {
    /// Crossbar's `message` and `data` for this error.
    fn message_and_data(&self) -> (&'static str, Value) {
        match self {
            Self::MissingCredentials => ("invalid_credentials", json!({"message": "invalid credentials"})),
            Self::InvalidCredentials => ("invalid credentials", json!({})),
            Self::Forbidden => ("forbidden", json!({"message": "forbidden"})),
            Self::MethodNotAllowed { .. } => ("invalid_method", json!({"message": "method not allowed"})),
            Self::NotFound => ("not_found", json!({"message": "not found"})),
            Self::BadAccountId(value) => {
                ("bad identifier", json!({"message": format!("invalid account_id '{value}'")}))
            }
            Self::BadIdentifier(id) => ("bad_identifier", json!({"cause": id, "message": "bad identifier"})),
            Self::Validation(errors) => ("validation error", errors.clone().into_json()),
            Self::InvalidJson(reason) => {
                ("validation error", json!({"json": {"invalid": {"message": reason, "target": "body"}}}))
            }
            Self::PayloadTooLarge { limit } => (
                "request entity too large",
                json!({"message": format!("the request body is larger than {limit} bytes")}),
            ),
            Self::FaultyRequest(reason) => ("faulty_request", json!({"message": reason})),
            Self::Conflict => ("datastore_conflict", json!({"message": "conflicting documents"})),
            Self::Refused { message, reason } => (message, json!({"message": reason})),
            Self::Unavailable(reason) => ("service unavailable", json!({"message": reason})),
            // Crossbar's answer when its datastore cannot be reached.
            Self::DatastoreUnreachable => ("datastore_unreachable", json!({"message": "datastore timeout"})),
            Self::Storage(_) => ("datastore_fault", json!({"message": "datastore fatal error"})),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound | Self::BadAccountId(_) | Self::BadIdentifier(_) | Self::FaultyRequest(_) => {
                StatusCode::NOT_FOUND
            }
            Self::Validation(_) | Self::InvalidJson(_) | Self::Refused { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Unavailable(_) | Self::DatastoreUnreachable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let Self::Storage(error) = self {
            tracing::error!(error = %error, cause = ?std::error::Error::source(error), "request failed in the store");
        }
        let (message, data) = self.message_and_data();
        let mut fields = serde_json::Map::new();
        fields.insert("error".into(), Value::String(status.as_u16().to_string()));
        fields.insert("message".into(), Value::String(message.into()));
        fields.insert("status".into(), Value::String("error".into()));
        let mut response = render(status, &serde_json::to_vec(&data).unwrap_or_default(), fields);
        if let Self::MethodNotAllowed { allow } = self {
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}
