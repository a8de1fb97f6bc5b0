//! The checks of a hook's `custom_request_headers` (docs/kazoo.md#custom-request-headers).

use serde_json::{Map, Value, json};

use crate::errors::{ValidationErrors, field_path};

/// Request headers a hook may not set: the server sets them itself, they frame the message, or
/// they carry the signature (docs/kazoo.md#custom-request-headers). Lower case.
pub const RESERVED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "x-hook-id",
    "x-account-id",
    "x-event-id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// The characters an HTTP header name may hold (RFC 9110 `token`), as a pattern for error targets.
const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// The longest header name a hook may set. Registered names are under 50 characters; servers
/// refuse header lines of a few kilobytes. (Values are bounded by the schema, draft-04 having no
/// keyword for property names.)
const MAX_HEADER_NAME_LENGTH: usize = 256;

/// Header names, values and the reserved list (docs/kazoo.md#custom-request-headers).
/// Non-string values already failed the schema; their entry is left as is.
pub(super) fn check_request_headers(headers: &Map<String, Value>, errors: &mut ValidationErrors) {
    for (name, value) in headers {
        let path = field_path(&["custom_request_headers", name]);
        if errors.field(&path).is_some() {
            continue;
        }
        if name.chars().count() > MAX_HEADER_NAME_LENGTH {
            // Not echoed: the field path already carries it.
            errors.add(
                &path,
                "maxLength",
                json!({
                    "message": format!("Invalid HTTP header name: must not be more than {MAX_HEADER_NAME_LENGTH} characters"),
                    "target": MAX_HEADER_NAME_LENGTH,
                }),
            );
        } else if !is_header_name(name) {
            errors.add(
                &path,
                "pattern",
                json!({"message": "Invalid HTTP header name", "target": HEADER_NAME_PATTERN, "value": name}),
            );
        } else if RESERVED_REQUEST_HEADERS.iter().any(|reserved| reserved.eq_ignore_ascii_case(name)) {
            errors.add(
                &path,
                "reserved",
                json!({
                    "message": "Header is set by the server and cannot be overridden",
                    "target": RESERVED_REQUEST_HEADERS,
                    "value": name,
                }),
            );
        } else if let Some(text) = value.as_str()
            && !is_header_value(text)
        {
            errors.add(
                &path,
                "pattern",
                json!({"message": "Invalid HTTP header value: control characters are not allowed", "value": text}),
            );
        }
    }
}

/// RFC 9110 `token`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// RFC 9110 field value: no control characters but tab, so no header can be smuggled in.
fn is_header_value(value: &str) -> bool {
    value.chars().all(|character| character == '\t' || !character.is_control())
}
