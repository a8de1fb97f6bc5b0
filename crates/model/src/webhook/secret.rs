//! A hook's Standard Webhooks signing secret as clients write it: accepted, checked and stored
//! apart from the document, never returned.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::errors::ValidationErrors;

/// The write-only field holding a hook's Standard Webhooks signing secret: accepted from clients,
/// stored apart from the document, never returned (responses say `"signed": true` instead).
pub const SIGNING_SECRET_FIELD: &str = "signing_secret";

/// What a write does to the hook's signing secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum SecretChange {
    /// The field was absent: the stored secret (if any) stays.
    #[default]
    Keep,
    /// A new secret.
    Set(String),
    /// `null`: signing stops.
    Remove,
}

impl fmt::Debug for SecretChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret itself never reaches logs.
        match self {
            Self::Keep => f.write_str("Keep"),
            Self::Set(_) => f.write_str("Set(<redacted>)"),
            Self::Remove => f.write_str("Remove"),
        }
    }
}

/// Reads `signing_secret` from a client's data: `whsec_` followed by the base64 of 24 to 64
/// random bytes, the Standard Webhooks secret format.
pub(super) fn signing_secret_change(data: &Map<String, Value>, errors: &mut ValidationErrors) -> SecretChange {
    use base64::Engine;
    match data.get(SIGNING_SECRET_FIELD) {
        None => SecretChange::Keep,
        Some(Value::Null) => SecretChange::Remove,
        Some(Value::String(secret)) => {
            let decoded = secret
                .strip_prefix("whsec_")
                .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded).ok());
            match decoded {
                Some(key) if (24..=64).contains(&key.len()) => SecretChange::Set(secret.clone()),
                _ => {
                    // The value is a secret: the error does not echo it.
                    errors.add(
                        SIGNING_SECRET_FIELD,
                        "pattern",
                        json!({"message": "must be 'whsec_' followed by the base64 of 24 to 64 random bytes"}),
                    );
                    SecretChange::Keep
                }
            }
        }
        Some(_) => {
            errors.add(
                SIGNING_SECRET_FIELD,
                "type",
                json!({"message": "Value did not match type(s): string", "target": "string"}),
            );
            SecretChange::Keep
        }
    }
}
