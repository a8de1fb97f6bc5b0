//! Kazoo's CouchDB documents as an import reads them (docs/kazoo.md#couchdb-import).
//!
//! An account document carries Kazoo's view of the account under `pvt_` keys: `pvt_tree` (its
//! ancestors, root first), `pvt_enabled`, `pvt_reseller`, `pvt_reseller_id`,
//! `pvt_superduper_admin`, `pvt_api_key`. A hook document of Kazoo's `webhooks` database carries the client's fields as stored, and
//! Kazoo's own under `_` and `pvt_`: `pvt_type` (`webhook`), `pvt_account_id` (the owner),
//! `pvt_deleted` (soft-deleted, skipped as Kazoo skips it) and `pvt_disabled_message` (why the
//! auto-disabler turned it off, which Crossbar shows as `disable_reason`). Documents written
//! before Kazoo 4 may carry a legacy hook type, which Kazoo migrates when it loads them.

use serde_json::{Map, Value};

use crate::ids::{AccountId, WebhookId};
use crate::retry::{FAILURE_COUNT_KEY, FAILURE_EXPIRY_KEY};

/// Hook types of old Kazoo releases and the notification type each becomes; a fax hook also
/// gets a companion for the matching error notification (Kazoo's `webhooks_util` migration).
const LEGACY_HOOK_TYPES: [(&str, &str, Option<&str>); 3] = [
    ("callflow", "callflow", None),
    ("inbound_fax", "inbound_fax", Some("inbound_fax_error")),
    ("outbound_fax", "outbound_fax", Some("outbound_fax_error")),
];

/// One hook to import, read from a document of Kazoo's `webhooks` database.
#[derive(Debug, Clone, PartialEq)]
pub struct KazooHook {
    /// What identifies it in Kazoo however often it is imported: the document id, followed by
    /// `/` and the companion's notification type for the second hook of a legacy fax hook.
    pub source: String,
    /// The document's revision: a hook whose revision is the one imported last is unchanged.
    pub revision: String,
    /// The owner.
    pub account_id: AccountId,
    /// The client's fields, verbatim (private fields left out; a legacy type migrated).
    pub fields: Map<String, Value>,
    /// Why Kazoo's auto-disabler turned it off, if it did.
    pub disabled_reason: Option<String>,
}

/// What a document read from Kazoo's CouchDB is.
#[derive(Debug, Clone, PartialEq)]
pub enum Read<T> {
    /// What to import.
    Found(T),
    /// Nothing to import.
    Skipped(Skip),
}

/// Why a document is nothing to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// `_design/...`.
    Design,
    /// `pvt_type` is not the database's own type.
    OtherType,
    /// `pvt_deleted` is true: Kazoo deleted it (soft-deleted documents stay in CouchDB until
    /// compacted away).
    Deleted,
}

/// Why a document cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// No `_id` or `_rev`, or not an object at all.
    #[error("not a CouchDB document (no _id or _rev)")]
    NotADocument,
    /// `pvt_account_id` is missing or not an account id.
    #[error("pvt_account_id is missing or not an account id")]
    NoOwner,
    /// The id is no account id, or `pvt_tree` not a list of account ids.
    #[error("the account id or pvt_tree is not made of account ids")]
    BadTree,
    /// An attempt record lacks what it must have.
    #[error("not an attempt record: {0}")]
    BadAttempt(&'static str),
}

/// An account of Kazoo's `accounts` database: what hooks need of it.
#[derive(Debug, Clone, PartialEq)]
pub struct KazooAccount {
    /// The account.
    pub id: AccountId,
    /// Its name.
    pub name: String,
    /// Its ancestors, root first (`pvt_tree`).
    pub tree: Vec<AccountId>,
    /// Its API key (`pvt_api_key`), so that the standalone `api_auth` accepts Kazoo's key.
    pub api_key: Option<String>,
    /// `pvt_superduper_admin`.
    pub superduper_admin: bool,
    /// What else is kept: `enabled` (`pvt_enabled`, enabled when missing), `is_reseller`
    /// (`pvt_reseller`), `realm`, `reseller_id` (`pvt_reseller_id`): the keys the account sync
    /// of Kazoo mode keeps from Crossbar.
    pub doc: Map<String, Value>,
}

/// A CouchDB document of the type asked for, not deleted.
struct Stored<'d> {
    id: &'d str,
    revision: &'d str,
    fields: &'d Map<String, Value>,
}

/// `doc` if it is a document of type `kind`, or why it is skipped.
fn document<'d>(doc: &'d Value, kind: &str) -> Result<Read<Stored<'d>>, DocumentError> {
    let object = doc.as_object().ok_or(DocumentError::NotADocument)?;
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let (Some(id), Some(revision)) = (text("_id"), text("_rev")) else {
        return Err(DocumentError::NotADocument);
    };
    if id.starts_with("_design/") {
        return Ok(Read::Skipped(Skip::Design));
    }
    if text("pvt_type") != Some(kind) {
        return Ok(Read::Skipped(Skip::OtherType));
    }
    if object.get("pvt_deleted").is_some_and(is_true) {
        return Ok(Read::Skipped(Skip::Deleted));
    }
    Ok(Read::Found(Stored { id, revision, fields: object }))
}

/// Reads one document of Kazoo's `accounts` database.
pub fn read_account_document(doc: &Value) -> Result<Read<KazooAccount>, DocumentError> {
    let Stored { id, fields: object, .. } = match document(doc, "account")? {
        Read::Found(found) => found,
        Read::Skipped(skip) => return Ok(Read::Skipped(skip)),
    };
    let id: AccountId = id.parse().map_err(|_| DocumentError::BadTree)?;
    let tree = match object.get("pvt_tree") {
        None => Vec::new(),
        Some(Value::Array(ancestors)) => ancestors
            .iter()
            .map(|ancestor| ancestor.as_str().and_then(|ancestor| ancestor.parse().ok()))
            .collect::<Option<Vec<AccountId>>>()
            .ok_or(DocumentError::BadTree)?,
        Some(_) => return Err(DocumentError::BadTree),
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let mut kept = Map::new();
    kept.insert("enabled".into(), Value::Bool(object.get("pvt_enabled").is_none_or(is_true)));
    kept.insert("is_reseller".into(), Value::Bool(object.get("pvt_reseller").is_some_and(is_true)));
    for (key, from) in [("realm", "realm"), ("reseller_id", "pvt_reseller_id")] {
        if let Some(value) = text(from) {
            kept.insert(key.into(), Value::String(value.to_owned()));
        }
    }
    Ok(Read::Found(KazooAccount {
        id,
        name: text("name").unwrap_or_default().to_owned(),
        tree,
        api_key: text("pvt_api_key").map(str::to_owned),
        superduper_admin: object.get("pvt_superduper_admin").is_some_and(is_true),
        doc: kept,
    }))
}

/// Reads one document of Kazoo's `webhooks` database: one hook, or two for a legacy fax hook.
pub fn read_hook_document(doc: &Value) -> Result<Read<Vec<KazooHook>>, DocumentError> {
    let Stored { id, revision, fields: object } = match document(doc, "webhook")? {
        Read::Found(found) => found,
        Read::Skipped(skip) => return Ok(Read::Skipped(skip)),
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let account_id: AccountId =
        text("pvt_account_id").and_then(|owner| owner.parse().ok()).ok_or(DocumentError::NoOwner)?;
    let mut fields = public_fields(object);
    let disabled_reason = text("pvt_disabled_message").map(str::to_owned);
    let hook = |source: String, fields: Map<String, Value>| KazooHook {
        source,
        revision: revision.to_owned(),
        account_id: account_id.clone(),
        fields,
        disabled_reason: disabled_reason.clone(),
    };
    let legacy = fields.get("hook").and_then(Value::as_str).and_then(|kind| {
        LEGACY_HOOK_TYPES
            .iter()
            .find(|(legacy, _, _)| *legacy == kind)
            .map(|(_, becomes, companion)| (*becomes, *companion))
    });
    let Some((becomes, companion)) = legacy else {
        return Ok(Read::Found(vec![hook(id.to_owned(), fields)]));
    };
    // As Kazoo migrates them: a notifications hook with a top-level `type`.
    fields.insert("hook".into(), Value::String("notifications".into()));
    fields.insert("type".into(), Value::String(becomes.into()));
    let mut hooks = Vec::with_capacity(2);
    if let Some(companion) = companion {
        let mut error_hook = fields.clone();
        error_hook.insert("type".into(), Value::String(companion.into()));
        hooks.push(hook(format!("{id}/{companion}"), error_hook));
    }
    hooks.insert(0, hook(id.to_owned(), fields));
    Ok(Read::Found(hooks))
}

/// A hook to write into Kazoo's `webhooks` database (an export, or the mirror of a write).
#[derive(Debug, Clone, Copy)]
pub struct HookExport<'a> {
    /// The hook.
    pub id: &'a WebhookId,
    /// Its owner.
    pub account_id: &'a AccountId,
    /// Its public fields.
    pub fields: &'a Map<String, Value>,
    /// Whether it fires.
    pub enabled: bool,
    /// Why the auto-disabler turned it off, if it did.
    pub disabled_reason: Option<&'a str>,
    /// Creation time, gregorian seconds.
    pub created: i64,
    /// Last write, gregorian seconds.
    pub modified: i64,
}

/// `hook` as Kazoo's `webhooks` database holds it, written over `existing` (the document there
/// now: its revision, and the private fields Kazoo wrote, such as who created it, are kept), so
/// that Kazoo's app reads it as its own and its mailer finds the disable reason; `None` when
/// `existing` holds the hook already. [`read_hook_document`] reads it back as it was.
pub fn write_hook_document(hook: &HookExport<'_>, existing: Option<&Value>) -> Option<Value> {
    let mut doc = existing.and_then(Value::as_object).cloned().unwrap_or_default();
    doc.retain(|key, _| crate::webhook::is_private_key(key) && key != "pvt_disabled_message" && key != "pvt_deleted");
    doc.extend(hook.fields.iter().map(|(key, value)| (key.clone(), value.clone())));
    doc.insert("enabled".into(), Value::Bool(hook.enabled));
    doc.insert("_id".into(), Value::String(hook.id.to_string()));
    doc.insert("pvt_type".into(), Value::String("webhook".into()));
    doc.insert("pvt_account_id".into(), Value::String(hook.account_id.to_string()));
    doc.insert("pvt_account_db".into(), Value::String("webhooks".into()));
    doc.entry("pvt_vsn").or_insert_with(|| Value::String("1".into()));
    doc.entry("pvt_created").or_insert_with(|| Value::from(hook.created));
    if let Some(reason) = hook.disabled_reason.filter(|_| !hook.enabled) {
        doc.insert("pvt_disabled_message".into(), Value::String(reason.to_owned()));
    }
    let unchanged = |existing: &Map<String, Value>| {
        let without_time = |doc: &Map<String, Value>| {
            let mut doc = doc.clone();
            doc.remove("pvt_modified");
            doc
        };
        without_time(existing) == without_time(&doc)
    };
    if existing.and_then(Value::as_object).is_some_and(unchanged) {
        return None;
    }
    doc.insert("pvt_modified".into(), Value::from(hook.modified));
    Some(Value::Object(doc))
}

/// The database of account `id` as Kazoo names it in URLs: `account%2F3a%2F4b%2F5c6d...`.
pub fn account_db(id: &AccountId) -> String {
    let id = id.as_str();
    format!("account%2F{}%2F{}%2F{}", &id[..2], &id[2..4], &id[4..])
}

/// The monthly databases of account `id` (Kazoo's MODBs, where it keeps attempt records) of the
/// `months` months up to the one of `unix_seconds`, newest first: `account%2F...-YYYYMM`.
pub fn monthly_dbs(id: &AccountId, unix_seconds: i64, months: u32) -> Vec<String> {
    let date = time::OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (mut year, mut month) = (date.year(), u8::from(date.month()));
    let mut dbs = Vec::new();
    for _ in 0..months {
        dbs.push(format!("{}-{year:04}{month:02}", account_db(id)));
        (year, month) = if month == 1 { (year - 1, 12) } else { (year, month - 1) };
    }
    dbs
}

/// An attempt record of a monthly database.
#[derive(Debug, Clone, PartialEq)]
pub struct KazooAttempt {
    /// Its id (Kazoo's are 32 hex characters, as here).
    pub id: String,
    /// The hook owner's account.
    pub account_id: AccountId,
    /// The hook.
    pub hook_id: WebhookId,
    /// When it was made, gregorian seconds.
    pub created: i64,
    /// Its public fields, verbatim.
    pub fields: Map<String, Value>,
}

/// Reads one document of a monthly database: an attempt record (`pvt_type: webhook_attempt`), or
/// nothing to import (the database holds the month's other records too).
pub fn read_attempt_document(doc: &Value) -> Result<Read<KazooAttempt>, DocumentError> {
    let Stored { id, fields: object, .. } = match document(doc, "webhook_attempt")? {
        Read::Found(found) => found,
        Read::Skipped(skip) => return Ok(Read::Skipped(skip)),
    };
    let is_id = id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if !is_id {
        return Err(DocumentError::BadAttempt("_id is no 32-hex id"));
    }
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let account_id = text("pvt_account_id").and_then(|owner| owner.parse().ok()).ok_or(DocumentError::NoOwner)?;
    let hook_id =
        text("hook_id").and_then(|hook| hook.parse().ok()).ok_or(DocumentError::BadAttempt("hook_id is no hook id"))?;
    let created =
        object.get("pvt_created").and_then(Value::as_i64).ok_or(DocumentError::BadAttempt("no pvt_created"))?;
    Ok(Read::Found(KazooAttempt { id: id.to_owned(), account_id, hook_id, created, fields: public_fields(object) }))
}

/// The fields of a stored document clients see: all but `_` and `pvt_` ones.
fn public_fields(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(key, _)| !crate::webhook::is_private_key(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A dialled number in E.164 as Kazoo's default converters make it: a North American number of
/// ten digits (with or without `1` or `+1`) gets `+1`, `011...` and `00...` (five digits at least
/// after them) become `+...`, and a number of eight digits or more starting with 2-9 gets `+`;
/// anything else is kept as it is.
pub fn normalize_e164(number: &str) -> String {
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let national = |text: &str| {
        let bytes = text.as_bytes();
        bytes.len() == 10 && digits(text) && (b'2'..=b'9').contains(&bytes[0]) && (b'2'..=b'9').contains(&bytes[3])
    };
    let nanp = number.strip_prefix("+1").or_else(|| number.strip_prefix('1')).filter(|rest| national(rest));
    if let Some(national) = nanp.or(Some(number).filter(|number| national(number))) {
        return format!("+1{national}");
    }
    let international = number.strip_prefix("011").or_else(|| number.strip_prefix("00"));
    if let Some(rest) = international.filter(|rest| rest.len() >= 5 && digits(rest)) {
        return format!("+{rest}");
    }
    if number.len() >= 8 && digits(number) && number.as_bytes()[0] >= b'2' {
        return format!("+{number}");
    }
    number.to_owned()
}

/// The database of Kazoo's number documents that holds `e164`: `numbers%2F` and the first five
/// characters of the number, encoded (`+14155551234` is in `numbers%2F%2B1415`).
pub fn numbers_db(e164: &str) -> String {
    let head: String = e164.chars().take(5).collect();
    format!("numbers%2F{}", encode_segment(&head))
}

/// The account a number document assigns its number to, when the number can take calls: assigned
/// (`pvt_assigned_to`) and `in_service`, `port_in`, `port_out` or `reserved` (`pvt_state`).
pub fn number_owner(doc: &Value) -> Option<AccountId> {
    let state = doc.get("pvt_state").and_then(Value::as_str)?;
    if !["in_service", "port_in", "port_out", "reserved"].contains(&state)
        || doc.get("pvt_deleted").is_some_and(is_true)
    {
        return None;
    }
    doc.get("pvt_assigned_to").and_then(Value::as_str)?.parse().ok()
}

/// The number whose document a change notice's `routing_key` names
/// (`doc_edited.numbers%2F%2B1415.number.%2B14155551234`: `+14155551234`); `None` for any other
/// notice.
pub fn changed_number(routing_key: &str) -> Option<String> {
    let mut words = routing_key.split('.');
    let (_action, _db, kind, id) = (words.next()?, words.next()?, words.next()?, words.next()?);
    (kind == "number" && words.next().is_none()).then(|| decode_segment(id))
}

/// A path segment decoded: each `%XX` as its byte (a malformed one kept as it is).
fn decode_segment(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes
            .get(at + 1..at + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[at], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// `text` as one segment of a CouchDB path: bytes other than letters, digits and `-_.~` as `%XX`.
pub fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The id of the webhooks app's settings of one account, in the account's database.
pub const ACCOUNT_CONFIG_ID: &str = "configs_webhooks";
/// The id of the system-wide settings document, in `system_config`.
pub const SYSTEM_CONFIG_ID: &str = "webhooks";

/// The failure limits a configuration holds (`attempt_failure_count`, `attempt_failure_expiry_ms`),
/// as stored: an account's `configs_webhooks` document holds them at its top, the system's
/// `system_config/webhooks` under `default`.
pub fn failure_limits(config: &Value) -> Map<String, Value> {
    [FAILURE_COUNT_KEY, FAILURE_EXPIRY_KEY]
        .into_iter()
        .filter_map(|key| config.get(key).map(|value| (key.to_owned(), value.clone())))
        .collect()
}

/// Kazoo's truthiness of a stored flag: `true` or `"true"`.
fn is_true(value: &Value) -> bool {
    matches!(value, Value::Bool(true)) || value.as_str() == Some("true")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const OWNER: &str = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d";

    fn hooks(doc: &Value) -> Vec<KazooHook> {
        match read_hook_document(doc) {
            Ok(Read::Found(hooks)) => hooks,
            other => panic!("not hooks: {other:?}"),
        }
    }

    #[test]
    fn a_hook_keeps_its_public_fields_verbatim_and_its_disable_message() {
        let doc = json!({"_id": "a0b1", "_rev": "2-f4", "enabled": false, "group": "ops", "retries": "1",
            "hook": "channel_create", "pvt_account_id": OWNER, "pvt_type": "webhook",
            "pvt_disabled_message": "too many failed attempts", "pvt_created": 63_876_513_600_u64});
        let [hook] = hooks(&doc).try_into().expect("one hook");
        assert_eq!((hook.source.as_str(), hook.revision.as_str(), hook.account_id.as_str()), ("a0b1", "2-f4", OWNER));
        assert_eq!(
            Value::Object(hook.fields),
            json!({"enabled": false, "group": "ops", "retries": "1", "hook": "channel_create"})
        );
        assert_eq!(hook.disabled_reason.as_deref(), Some("too many failed attempts"));
    }

    #[test]
    fn design_other_and_deleted_documents_are_no_hooks() {
        let not = |doc: Value| read_hook_document(&doc).expect("readable");
        assert_eq!(not(json!({"_id": "_design/webhooks", "_rev": "1-a"})), Read::Skipped(Skip::Design));
        assert_eq!(not(json!({"_id": "x", "_rev": "1-a", "pvt_type": "user"})), Read::Skipped(Skip::OtherType));
        let deleted = json!({"_id": "x", "_rev": "1-a", "pvt_type": "webhook", "pvt_deleted": true});
        assert_eq!(not(deleted), Read::Skipped(Skip::Deleted));
    }

    #[test]
    fn documents_without_an_owner_or_a_revision_are_refused() {
        let no_owner = json!({"_id": "x", "_rev": "1-a", "pvt_type": "webhook", "pvt_account_id": "nope"});
        assert_eq!(read_hook_document(&no_owner), Err(DocumentError::NoOwner));
        assert_eq!(read_hook_document(&json!({"_id": "x"})), Err(DocumentError::NotADocument));
        assert_eq!(read_hook_document(&json!([1])), Err(DocumentError::NotADocument));
    }

    #[test]
    fn an_account_keeps_its_tree_flags_and_api_key() {
        let doc = json!({"_id": OWNER, "_rev": "7-31", "name": "Acme Customer", "pvt_type": "account",
            "pvt_tree": ["1f0e2d3c4b5a69788796a5b4c3d2e1f0", "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2"],
            "pvt_reseller_id": "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2", "realm": "acme.sip.example.net",
            "pvt_api_key": "1cdd", "timezone": "America/Los_Angeles"});
        let Ok(Read::Found(account)) = read_account_document(&doc) else { panic!("an account") };
        assert_eq!((account.id.as_str(), account.name.as_str(), account.tree.len()), (OWNER, "Acme Customer", 2));
        assert_eq!((account.api_key.as_deref(), account.superduper_admin), (Some("1cdd"), false));
        assert_eq!(
            Value::Object(account.doc),
            json!({"enabled": true, "is_reseller": false, "realm": "acme.sip.example.net",
                   "reseller_id": "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2"})
        );
        let bad_tree = json!({"_id": OWNER, "_rev": "1-a", "pvt_type": "account", "pvt_tree": ["x"]});
        assert_eq!(read_account_document(&bad_tree), Err(DocumentError::BadTree));
        let disabled = json!({"_id": OWNER, "_rev": "1-a", "pvt_type": "account", "pvt_enabled": false});
        let Ok(Read::Found(disabled)) = read_account_document(&disabled) else { panic!("an account") };
        assert_eq!(disabled.doc["enabled"], false);
    }

    #[test]
    fn account_databases_and_failure_limits_are_named_as_kazoo_names_them() {
        let id: AccountId = OWNER.parse().expect("an id");
        assert_eq!(account_db(&id), "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d");
        let config = json!({"_id": "configs_webhooks", "attempt_failure_count": 10, "other": 1});
        assert_eq!(Value::Object(failure_limits(&config)), json!({"attempt_failure_count": 10}));
        assert!(failure_limits(&json!({})).is_empty());
    }

    #[test]
    fn attempts_are_read_from_the_monthly_databases_of_the_months_asked_for() {
        let id: AccountId = OWNER.parse().expect("an id");
        // 2024-03-09T16:00:06Z.
        let dbs = monthly_dbs(&id, 1_709_999_206, 3);
        let db = "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d";
        assert_eq!(dbs, [format!("{db}-202403"), format!("{db}-202402"), format!("{db}-202401")]);
        assert_eq!(monthly_dbs(&id, 1_704_067_200, 2)[1], format!("{db}-202312"), "across a year");

        let doc = json!({"_id": "8e160178ab76c5a7c0a2cd4d544409d7", "_rev": "1-cb", "pvt_type": "webhook_attempt",
            "pvt_account_id": OWNER, "pvt_created": 63_877_219_206_i64, "hook_id": "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
            "result": "success", "resp_status_code": "200"});
        let Ok(Read::Found(attempt)) = read_attempt_document(&doc) else { panic!("an attempt") };
        assert_eq!((attempt.id.as_str(), attempt.created), ("8e160178ab76c5a7c0a2cd4d544409d7", 63_877_219_206));
        assert_eq!(
            Value::Object(attempt.fields),
            json!({"hook_id": "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", "result": "success", "resp_status_code": "200"})
        );
        let other = json!({"_id": "x", "_rev": "1-a", "pvt_type": "cdr"});
        assert_eq!(read_attempt_document(&other), Ok(Read::Skipped(Skip::OtherType)));
        let bad = json!({"_id": "x", "_rev": "1-a", "pvt_type": "webhook_attempt"});
        assert_eq!(read_attempt_document(&bad), Err(DocumentError::BadAttempt("_id is no 32-hex id")));
    }

    #[test]
    fn an_exported_hook_reads_back_as_it_was_and_keeps_kazoos_private_fields() {
        let (id, account) = ("5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b".parse().expect("an id"), OWNER.parse().expect("an id"));
        let fields = json!({"name": "calls", "uri": "https://hooks.example.com/a", "hook": "channel_create",
            "group": "ops"});
        let hook = HookExport {
            id: &id,
            account_id: &account,
            fields: fields.as_object().expect("fields"),
            enabled: false,
            disabled_reason: Some("too many failed attempts"),
            created: 63_000_000_000,
            modified: 63_000_000_100,
        };
        let existing = json!({"_id": id.as_str(), "_rev": "3-ab", "pvt_auth_user_id": "u1", "name": "old",
            "custom_data": {"gone": true}, "pvt_type": "webhook", "pvt_account_id": OWNER, "pvt_created": 62_000_000_000_i64});
        let written = write_hook_document(&hook, Some(&existing)).expect("changed");
        assert_eq!(written["_rev"], "3-ab");
        assert_eq!(written["pvt_auth_user_id"], "u1", "Kazoo's own fields kept");
        assert_eq!(written["pvt_created"], 62_000_000_000_i64, "created when Kazoo created it");
        assert!(written.get("custom_data").is_none(), "a field the hook no longer has is gone");
        assert_eq!(
            (written["pvt_disabled_message"].as_str(), written["enabled"].as_bool()),
            (Some("too many failed attempts"), Some(false))
        );
        assert_eq!(write_hook_document(&hook, Some(&written)), None, "written already");

        let Ok(Read::Found(read)) = read_hook_document(&written) else { panic!("a hook") };
        let [read] = read.try_into().expect("one hook");
        let mut expected = fields.as_object().cloned().expect("fields");
        expected.insert("enabled".into(), json!(false));
        assert_eq!((read.fields, read.disabled_reason.as_deref()), (expected, Some("too many failed attempts")));
        assert_eq!(write_hook_document(&hook, None).expect("new")["pvt_created"], 63_000_000_000_i64);
    }

    #[test]
    fn dialled_numbers_are_normalized_and_found_as_kazoo_finds_them() {
        for (dialled, e164) in [
            ("4155550100", "+14155550100"),
            ("14155550100", "+14155550100"),
            ("+14155550100", "+14155550100"),
            ("011442071838750", "+442071838750"),
            ("00442071838750", "+442071838750"),
            ("442071838750", "+442071838750"),
            ("+442071838750", "+442071838750"),
            ("1001", "1001"),
            ("0155550100", "0155550100"),
        ] {
            assert_eq!(normalize_e164(dialled), e164, "{dialled}");
        }
        assert_eq!(numbers_db("+14155551234"), "numbers%2F%2B1415");
        assert_eq!(encode_segment("+14155551234"), "%2B14155551234");
        assert_eq!(
            changed_number("doc_edited.numbers%2F%2B1415.number.%2B14155551234").as_deref(),
            Some("+14155551234")
        );
        assert_eq!(changed_number("doc_deleted.account%2F4c.undefined.%2B14155559876"), None);
        assert_eq!(changed_number("doc_edited.webhooks.webhook.x"), None);

        let number = |state: &str, assigned: Option<&str>| json!({"_id": "+14155550100", "pvt_state": state, "pvt_assigned_to": assigned});
        assert_eq!(number_owner(&number("in_service", Some(OWNER))), OWNER.parse().ok());
        assert_eq!(number_owner(&number("port_in", Some(OWNER))), OWNER.parse().ok());
        assert_eq!(number_owner(&number("available", Some(OWNER))), None);
        assert_eq!(number_owner(&number("in_service", None)), None);
    }

    #[test]
    fn legacy_hook_types_become_notifications_hooks_as_kazoo_migrates_them() {
        let legacy = |kind: &str| json!({"_id": "c2d3", "_rev": "4-b7", "hook": kind, "pvt_type": "webhook", "pvt_account_id": OWNER});
        let [callflow] = hooks(&legacy("callflow")).try_into().expect("one hook");
        assert_eq!(Value::Object(callflow.fields), json!({"hook": "notifications", "type": "callflow"}));

        let [fax, fax_error] = hooks(&legacy("inbound_fax")).try_into().expect("two hooks");
        assert_eq!((fax.source.as_str(), fax.fields["type"].as_str()), ("c2d3", Some("inbound_fax")));
        assert_eq!(fax_error.source, "c2d3/inbound_fax_error");
        assert_eq!(Value::Object(fax_error.fields), json!({"hook": "notifications", "type": "inbound_fax_error"}));
        let [_, outbound_error] = hooks(&legacy("outbound_fax")).try_into().expect("two hooks");
        assert_eq!(outbound_error.fields["type"], "outbound_fax_error");
    }
}
