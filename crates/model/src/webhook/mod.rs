//! The webhook document (docs/kazoo.md#webhook-document): validation of a client's `data` on
//! create, POST and PATCH (docs/kazoo.md#validation), PATCH's merge, and the typed view of a
//! validated document.
//!
//! Validation runs in two stages, as Crossbar's does: the schema stage (JSON schema, `uri`,
//! `custom_request_headers`) collects every error it finds; the modifier stage only runs on a
//! document that passed it, because modifiers depend on a valid `hook`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Map, Value, json};
use url::{Host, Url};

use crate::errors::ValidationErrors;
use crate::hooks::{DefinitionsError, HookDefinitions};
use crate::payload::{custom_data, include_internal_legs};

mod hook_type;
mod target;
mod uri;

pub use hook_type::HookType;
pub use target::{DeliveryTarget, Format, HttpVerb, UnknownFormat, UnknownHttpVerb};
pub use uri::{CallbackUri, CalloutUri, UncallableUri};

/// The JSON schema (draft-04) of the webhook document's public fields. Its `hook` enum is replaced
/// by the registered definitions' when a [`HookDefinitions`] is built.
pub const WEBHOOK_SCHEMA: &str = include_str!("../../../../proto-schemas/webhook.json");

/// Public keys a client may send but that are never stored: they are derived on read.
pub const READ_ONLY_FIELDS: &[&str] = &["id", "disable_reason", "signed"];

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
fn signing_secret_change(data: &Map<String, Value>, errors: &mut ValidationErrors) -> SecretChange {
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

/// Host names refused as `uri` hosts whatever the configuration (`kazoo_web.client.blacklist.hosts`).
pub const BLACKLISTED_HOSTS: &[&str] = &["localhost"];

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

    check_modifiers(&fields, ctx).into_result()?;
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

/// Why a `uri` is refused: reported to clients as Crossbar's `invalid client URL`, with this text
/// as the `cause`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCallbackUri {
    /// Not an absolute URL.
    #[error("not an absolute URL: {0}")]
    Unparsable(#[from] url::ParseError),
    /// Whitespace, control characters or backslashes, which other URL parsers would read
    /// differently.
    #[error("contains whitespace, control characters or backslashes")]
    IllegalCharacters,
    /// Only `http` and `https` are called.
    #[error("scheme '{0}' is not http or https")]
    Scheme(String),
    /// User name or password in the URL: they would be stored and shown in clear.
    #[error("carries credentials")]
    Credentials,
    /// No host to call.
    #[error("has no host")]
    NoHost,
    /// Not written `scheme://host...`.
    #[error("is not written scheme://host")]
    NotHierarchical,
    /// A host name on the blacklist.
    #[error("host '{0}' is blacklisted")]
    BlacklistedHost(String),
    /// A literal address in a range [`is_restricted_address`] refuses.
    #[error("address {0} is not a public address")]
    RestrictedAddress(IpAddr),
}

/// Checks a hook `uri`: absolute `http`/`https`, no credentials, host not blacklisted, and no
/// literal restricted address unless `allow_private_targets`. The WHATWG parser reads every
/// IPv4 spelling (`2130706433`, `0x7f.0.0.1`, `0177.0.0.1`, `127.1`, percent-encoded, full-width
/// digits) as the address it means, so each is judged by that address. Names are not resolved
/// here; the dispatcher checks every address it actually connects to with the same function.
pub fn check_callback_uri(uri: &str, allow_private_targets: bool) -> Result<Url, InvalidCallbackUri> {
    // The URL parser silently strips or skips whitespace and control characters, and reads a
    // backslash as a slash; refusing them keeps stored and called URL equal.
    if uri.chars().any(|character| character.is_whitespace() || character.is_control() || character == '\\') {
        return Err(InvalidCallbackUri::IllegalCharacters);
    }
    let url = Url::parse(uri)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidCallbackUri::Scheme(url.scheme().to_owned()));
    }
    // The parser also finds a host in `http:a`, `http:/a` and `http:///a`; the dispatcher does not.
    let authority = uri.get(url.scheme().len() + 1..).and_then(|rest| rest.strip_prefix("//"));
    if authority.is_none_or(|authority| authority.is_empty() || authority.starts_with('/')) {
        return Err(InvalidCallbackUri::NotHierarchical);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidCallbackUri::Credentials);
    }
    let address = match url.host() {
        None => return Err(InvalidCallbackUri::NoHost),
        Some(Host::Domain(domain)) => {
            // The parser lower-cases names; a trailing dot names the same host.
            let name = domain.trim_end_matches('.');
            // Names under `localhost` are loopback too (resolvers answer them so).
            let blacklisted = BLACKLISTED_HOSTS
                .iter()
                .any(|host| name == *host || name.strip_suffix(host).is_some_and(|parent| parent.ends_with('.')));
            if blacklisted {
                return Err(InvalidCallbackUri::BlacklistedHost(name.to_owned()));
            }
            None
        }
        Some(Host::Ipv4(address)) => Some(IpAddr::V4(address)),
        Some(Host::Ipv6(address)) => Some(IpAddr::V6(address)),
    };
    if let Some(address) = address
        && !allow_private_targets
        && is_restricted_address(address)
    {
        return Err(InvalidCallbackUri::RestrictedAddress(address));
    }
    Ok(url)
}

/// True for addresses a hook must not reach unless private targets are allowed: every range of
/// the IANA special-purpose registries that is not globally reachable (loopback, private, shared,
/// link-local with the cloud metadata services, documentation, benchmarking, multicast,
/// reserved), and IPv6 addresses carrying an IPv4 address that is (mapped, compatible, NAT64,
/// 6to4). The API checks literal `uri` hosts with it, the dispatcher every address it connects to.
pub fn is_restricted_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(address) => is_restricted_ipv4(address),
        IpAddr::V6(address) => is_restricted_ipv6(address),
    }
}

/// IPv4 networks no hook may reach, as (network, prefix length).
const RESTRICTED_IPV4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", 0.0.0.0 included
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared (carrier NAT), Alibaba's metadata 100.100.100.200
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, the usual metadata 169.254.169.254
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // former 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, the broadcast address included
];

/// IPv6 networks no hook may reach, as (network, prefix length). The forms embedding an IPv4
/// address are judged by that address instead ([`embedded_ipv4`]).
const RESTRICTED_IPV6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    // Local-use NAT64: the operator's own translator, to any IPv4 address; refused whole.
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    // Teredo: the IPv4 address inside is obfuscated and the relay is anyone's; refused whole.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48),     // benchmarking
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),     // segment routing identifiers
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),      // unique-local, AWS metadata fd00:ec2::254 included
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),     // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),     // former site-local
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),      // multicast
];

fn is_restricted_ipv4(address: Ipv4Addr) -> bool {
    let bits = u128::from(u32::from(address));
    RESTRICTED_IPV4.iter().any(|&(network, length)| in_network::<32>(bits, u128::from(u32::from(network)), length))
}

fn is_restricted_ipv6(address: Ipv6Addr) -> bool {
    let bits = u128::from(address);
    RESTRICTED_IPV6.iter().any(|&(network, length)| in_network::<128>(bits, u128::from(network), length))
        || embedded_ipv4(address).is_some_and(is_restricted_ipv4)
}

/// Whether the `WIDTH`-bit address `bits` shares the first `length` bits of `network`.
fn in_network<const WIDTH: u32>(bits: u128, network: u128, length: u8) -> bool {
    (bits ^ network).checked_shr(WIDTH - u32::from(length)).is_none_or(|differing| differing == 0)
}

/// The IPv4 address an IPv6 address carries, for the forms that reach it.
fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let from_pair = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match address.segments() {
        // Mapped ::ffff:a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, high, low] => Some(from_pair(high, low)),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => Some(from_pair(high, low)),
        // 6to4 2002:AABB:CCDD::/48.
        [0x2002, high, low, ..] => Some(from_pair(high, low)),
        // Deprecated compatible ::a.b.c.d.
        [0, 0, 0, 0, 0, 0, high, low] => Some(from_pair(high, low)),
        _ => None,
    }
}

/// Header names, values and the reserved list (docs/kazoo.md#custom-request-headers).
/// Non-string values already failed the schema; their entry is left as is.
fn check_request_headers(headers: &Map<String, Value>, errors: &mut ValidationErrors) {
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

/// Every modifier of the hook type must be set to an allowed value (docs/kazoo.md#modifiers).
fn check_modifiers(fields: &Map<String, Value>, ctx: &ValidationContext<'_>) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    let Some(hook) = fields.get("hook").and_then(Value::as_str) else { return errors };
    if hook == HookType::All.as_str() {
        return errors;
    }
    let custom_data = fields.get("custom_data").and_then(Value::as_object);
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

/// Crossbar's field path: keys joined by dots, a dot inside a key written `%2E`.
fn field_path<S: AsRef<str>>(segments: &[S]) -> String {
    segments.iter().map(|segment| segment.as_ref().replace('.', "%2E")).collect::<Vec<_>>().join(".")
}

/// Which scalar type a top-level property wants, for non-strict coercion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Integer,
    Number,
    Boolean,
}

/// The compiled webhook schema plus what coercion and defaults need from it.
#[derive(Debug, Clone)]
pub(crate) struct WebhookSchema {
    validator: jsonschema::Validator,
    /// `(property, default)` in schema order, so filled defaults are appended predictably.
    defaults: Vec<(String, Value)>,
    /// Top-level properties whose string values are coerced.
    scalars: Vec<(String, Scalar)>,
}

impl WebhookSchema {
    /// Compiles [`WEBHOOK_SCHEMA`] with `hook_enum` installed as the `hook` enum.
    pub(crate) fn compile(hook_enum: &[String]) -> Result<Self, DefinitionsError> {
        let mut schema: Value = serde_json::from_str(WEBHOOK_SCHEMA)?;
        let properties = schema
            .get_mut("properties")
            .and_then(Value::as_object_mut)
            .ok_or(DefinitionsError::SchemaShape("properties"))?;
        let hook =
            properties.get_mut("hook").and_then(Value::as_object_mut).ok_or(DefinitionsError::SchemaShape("hook"))?;
        hook.insert("enum".into(), hook_enum.iter().cloned().map(Value::String).collect());

        let mut defaults = Vec::new();
        let mut scalars = Vec::new();
        for (name, property) in properties.iter() {
            if let Some(default) = property.get("default") {
                defaults.push((name.clone(), default.clone()));
            }
            let scalar = match property.get("type").and_then(Value::as_str) {
                Some("integer") => Some(Scalar::Integer),
                Some("number") => Some(Scalar::Number),
                Some("boolean") => Some(Scalar::Boolean),
                _ => None,
            };
            if let Some(scalar) = scalar {
                scalars.push((name.clone(), scalar));
            }
        }
        let validator = jsonschema::draft4::options()
            // Kazoo does not enforce `format: uri`; the uri has its own check.
            .should_validate_formats(false)
            .build(&schema)
            .map_err(|error| DefinitionsError::SchemaCompile(Box::new(error)))?;
        Ok(Self { validator, defaults, scalars })
    }

    /// Kazoo's non-strict mode: `"3"` becomes `3` and `"true"` becomes `true` where the schema wants
    /// them; a whole float becomes an integer. Values that do not convert are left for the
    /// type error to report as sent.
    fn coerce(&self, fields: &mut Map<String, Value>) {
        for (name, scalar) in &self.scalars {
            let Some(value) = fields.get_mut(name) else { continue };
            let coerced = match (scalar, &*value) {
                (Scalar::Integer, Value::String(text)) => text.parse::<i64>().ok().map(Value::from),
                (Scalar::Integer, Value::Number(number)) if number.as_i64().is_none() && number.as_u64().is_none() => {
                    // Whole and well inside i64's exact range, so the cast is lossless.
                    number
                        .as_f64()
                        .filter(|float| float.fract() == 0.0 && float.abs() < 9e15)
                        .map(|float| Value::from(float as i64))
                }
                (Scalar::Number, Value::String(text)) => {
                    text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
                }
                (Scalar::Boolean, Value::String(text)) => match text.as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
                _ => None,
            };
            if let Some(coerced) = coerced {
                *value = coerced;
            }
        }
    }

    /// Fills missing optional fields with the schema's defaults.
    fn apply_defaults(&self, fields: &mut Map<String, Value>) {
        for (name, default) in &self.defaults {
            if !fields.contains_key(name) {
                fields.insert(name.clone(), default.clone());
            }
        }
    }

    /// Every schema error, in Crossbar's shape.
    fn check(&self, fields: &Map<String, Value>) -> ValidationErrors {
        let instance = Value::Object(fields.clone());
        let mut errors = ValidationErrors::new();
        for error in self.validator.iter_errors(&instance) {
            let (field, rule, detail) = crossbar_error(&error);
            errors.add(&field, &rule, detail);
        }
        errors
    }
}

/// One schema error as Crossbar words it: field path, rule, detail.
fn crossbar_error(error: &jsonschema::ValidationError<'_>) -> (String, String, Value) {
    let mut path: Vec<String> = error.instance_path().iter().map(|segment| segment.to_string()).collect();
    let value = error.instance().as_ref().clone();
    let (rule, detail) = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().map_or_else(|| property.to_string(), str::to_owned);
            path.push(name.clone());
            ("required".to_owned(), json!({"message": "Field is required but missing", "value": name}))
        }
        ValidationErrorKind::Enum { options } => (
            "enum".to_owned(),
            json!({"message": "Value not found in enumerated list of values", "target": options.as_ref(), "value": value}),
        ),
        ValidationErrorKind::Type { kind } => {
            let names: Vec<&str> = match kind {
                TypeKind::Single(single) => vec![single.as_str()],
                TypeKind::Multiple(set) => set.iter().map(|json_type| json_type.as_str()).collect(),
            };
            let target = match names.as_slice() {
                [single] => json!(single),
                several => json!(several),
            };
            let message = format!("Value did not match type(s): {}", names.join(", "));
            ("type".to_owned(), json!({"message": message, "target": target, "value": value}))
        }
        ValidationErrorKind::Minimum { limit } => (
            "minimum".to_owned(),
            json!({"message": format!("Value must be at least {limit}"), "target": limit, "value": value}),
        ),
        ValidationErrorKind::Maximum { limit } => (
            "maximum".to_owned(),
            json!({"message": format!("Value must be at most {limit}"), "target": limit, "value": value}),
        ),
        // Without the value: echoing an oversized string back is what the limit prevents.
        ValidationErrorKind::MaxLength { limit } => (
            "maxLength".to_owned(),
            json!({"message": format!("String must not be more than {limit} characters"), "target": limit}),
        ),
        ValidationErrorKind::MaxProperties { limit } => (
            "maxProperties".to_owned(),
            json!({"message": format!("Object must not have more than {limit} properties"), "target": limit}),
        ),
        // Keywords the webhook schema does not use today: keep the rule name, use the library's text.
        other => (other.keyword().to_owned(), json!({"message": error.to_string(), "value": value})),
    };
    (field_path(&path), rule, detail)
}
