//! The webhook document (docs/kazoo.md#webhook-document): validation of a client's `data` on
//! create, POST and PATCH (docs/kazoo.md#validation), PATCH's merge, and the typed view of a
//! validated document.
//!
//! Validation runs in two stages, as Crossbar's does: the schema stage (JSON schema, `uri`,
//! `custom_request_headers`) collects every error it finds; the modifier stage only runs on a
//! document that passed it, because modifiers depend on a valid `hook`.

use serde_json::{Map, Value, json};

use crate::errors::{ValidationErrors, field_path};
use crate::hooks::{HookDefinitions, HookType};
use crate::payload::{custom_data, include_internal_legs};

mod address;
mod headers;
mod secret;
mod target;
mod uri;

pub use address::is_restricted_address;
pub use headers::RESERVED_REQUEST_HEADERS;
pub use secret::{SIGNING_SECRET_FIELD, SecretChange};
pub use target::{DeliveryTarget, Format, HttpVerb, UnknownFormat, UnknownHttpVerb};
pub use uri::{BLACKLISTED_HOSTS, CallbackUri, CalloutUri, InvalidCallbackUri, UncallableUri, check_callback_uri};

use headers::check_request_headers;
use secret::signing_secret_change;

/// Public keys a client may send but that are never stored: they are derived on read.
pub const READ_ONLY_FIELDS: &[&str] = &["id", "disable_reason", "signed"];

/// True for keys clients can never see or set: those starting with `_` or `pvt_`.
pub fn is_private_key(key: &str) -> bool {
    key.starts_with('_') || key.starts_with("pvt_")
}

/// Who validates, against which definitions, under which target policy.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    /// The registered hook types: the `hook` enum and the modifiers.
    pub definitions: &'a HookDefinitions,
    /// The caller's account is a super-duper admin: it may use the restricted notification types.
    pub superduper_admin: bool,
    /// Literal loopback and private addresses are accepted as `uri` hosts (tests, private setups).
    pub allow_private_targets: bool,
}

/// A validated webhook document: the public fields with defaults filled in, unknown client
/// fields kept in their order, no private or read-only keys.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDocument {
    fields: Map<String, Value>,
    signing_secret: SecretChange,
    target: DeliveryTarget,
    enabled: bool,
    include_internal_legs: bool,
    include_subaccounts: bool,
}

impl WebhookDocument {
    /// Reads the typed fields of a document that passed validation. The fallbacks are Kazoo's
    /// runtime defaults (docs/kazoo.md#runtime-reading) and cannot trigger after validation filled
    /// the defaults.
    fn from_validated(fields: Map<String, Value>) -> Self {
        let flag = |key: &str, default: bool| fields.get(key).and_then(Value::as_bool).unwrap_or(default);
        Self {
            target: DeliveryTarget::from_document(&fields),
            enabled: flag("enabled", true),
            include_internal_legs: include_internal_legs(&fields),
            include_subaccounts: flag("include_subaccounts", false),
            signing_secret: SecretChange::Keep,
            fields,
        }
    }

    /// The friendly name.
    pub fn name(&self) -> &str {
        self.text("name")
    }

    /// The hook type (`all` or a definition id).
    pub fn hook(&self) -> &str {
        self.text("hook")
    }

    /// Where and how the hook's callouts go.
    pub fn target(&self) -> &DeliveryTarget {
        &self.target
    }

    /// The callback URL, as the client wrote it.
    pub fn uri(&self) -> &str {
        self.target.uri.as_str()
    }

    /// How the URI is called.
    pub fn http_verb(&self) -> HttpVerb {
        self.target.http_verb
    }

    /// How a POST/PUT body is encoded.
    pub fn format(&self) -> Format {
        self.target.format
    }

    /// Retries after the first attempt, 0..=4 (Kazoo's runtime counted attempts instead).
    pub fn retries(&self) -> u8 {
        self.target.retries
    }

    /// Whether the hook fires.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether loopback call legs are delivered to channel hooks.
    pub fn include_internal_legs(&self) -> bool {
        self.include_internal_legs
    }

    /// Whether the hook also fires for descendant accounts' events (missing means false).
    pub fn include_subaccounts(&self) -> bool {
        self.include_subaccounts
    }

    /// Modifiers and extra payload fields, every value a string.
    pub fn custom_data(&self) -> Option<&Map<String, Value>> {
        custom_data(&self.fields)
    }

    /// Extra request headers (name to string value) sent with every callout; `None` when there
    /// are none.
    pub fn custom_request_headers(&self) -> Option<&Map<String, Value>> {
        self.target.custom_request_headers.as_deref()
    }

    /// What the write does to the signing secret (kept out of [`WebhookDocument::fields`]).
    pub fn signing_secret(&self) -> &SecretChange {
        &self.signing_secret
    }

    /// Every public field, unknown client fields included, in order.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The public fields, to store.
    pub fn into_fields(self) -> Map<String, Value> {
        self.fields
    }

    fn text(&self, key: &str) -> &str {
        // The schema made these required strings; "" is unreachable after validation.
        self.fields.get(key).and_then(Value::as_str).unwrap_or_default()
    }
}

/// Validates a client's `data` for create, POST or PATCH (after [`merge_patch`]).
///
/// Private keys and the read-only `id`/`disable_reason` are dropped; string numbers and booleans
/// are coerced where the schema wants them (Kazoo's non-strict mode); defaults are filled in.
/// Every schema-stage error is reported at once, in Crossbar's shape; modifier errors
/// (docs/kazoo.md#modifiers) are checked only once the schema stage passed.
pub fn validate_webhook(
    data: &Map<String, Value>,
    ctx: &ValidationContext<'_>,
) -> Result<WebhookDocument, ValidationErrors> {
    let document = validate_stored_webhook(data, ctx)?;
    check_modifiers(&document.fields, ctx).into_result()?;
    Ok(document)
}

/// [`validate_webhook`] without its modifier stage, for a document another system stored and
/// would load as it is: Kazoo's own migration of legacy hooks writes `notifications` hooks
/// without `custom_data.type`, which it loads and which never fire (docs/kazoo.md#notifications).
pub fn validate_stored_webhook(
    data: &Map<String, Value>,
    ctx: &ValidationContext<'_>,
) -> Result<WebhookDocument, ValidationErrors> {
    let schema = ctx.definitions.schema();
    let mut fields: Map<String, Value> = data
        .iter()
        .filter(|(key, _)| {
            !is_private_key(key) && !READ_ONLY_FIELDS.contains(&key.as_str()) && key.as_str() != SIGNING_SECRET_FIELD
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    schema.coerce(&mut fields);
    schema.apply_defaults(&mut fields);

    let mut errors = schema.check(&fields);
    let signing_secret = signing_secret_change(data, &mut errors);
    // A `uri` the schema refused (too long) is not parsed.
    if let Some(Value::String(uri)) = fields.get("uri")
        && errors.field("uri").is_none()
        && let Err(why) = check_callback_uri(uri, ctx.allow_private_targets)
    {
        errors.add("uri", "error", json!({"message": "invalid client URL", "cause": why.to_string(), "value": uri}));
    }
    if let Some(Value::Object(headers)) = fields.get("custom_request_headers") {
        check_request_headers(headers, &mut errors);
    }
    errors.into_result()?;
    Ok(WebhookDocument { signing_secret, ..WebhookDocument::from_validated(fields) })
}

/// PATCH's merge (docs/kazoo.md#patch-merge): every key of `patch` replaces the stored one whole
/// (nested objects included), a `null` removes it. Stored keys keep their position; new keys are
/// appended. A `null` signing secret is kept: the secret is stored apart, and `null` is how a
/// client removes it.
pub fn merge_patch(stored: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut merged: Map<String, Value> = stored
        .iter()
        .filter_map(|(key, value)| match patch.get(key) {
            None => Some((key.clone(), value.clone())),
            Some(Value::Null) => None,
            Some(replacement) => Some((key.clone(), replacement.clone())),
        })
        .collect();
    for (key, value) in patch {
        if (!value.is_null() || key == SIGNING_SECRET_FIELD) && !merged.contains_key(key) {
            merged.insert(key.clone(), value.clone());
        }
    }
    merged
}

/// Every modifier of the hook type must be set to an allowed value (docs/kazoo.md#modifiers).
fn check_modifiers(fields: &Map<String, Value>, ctx: &ValidationContext<'_>) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    let Some(hook) = fields.get("hook").and_then(Value::as_str) else { return errors };
    if hook == HookType::All.as_str() {
        return errors;
    }
    let custom_data = custom_data(fields);
    for modifier in ctx.definitions.modifiers(hook) {
        let path = field_path(&["custom_data", modifier.key()]);
        match custom_data.and_then(|custom_data| custom_data.get(modifier.key())) {
            None => errors.add(&path, "required", json!({"message": "missing required modifier"})),
            Some(value) => {
                let accepted = value.as_str().is_some_and(|text| modifier.accepts(text, ctx.superduper_admin));
                if !accepted {
                    errors.add(
                        &path,
                        "enum",
                        json!({
                            "message": "value not found in enumerated list of values",
                            "cause": value,
                            "target": modifier.allowed(ctx.superduper_admin),
                        }),
                    );
                }
            }
        }
    }
    errors
}
