//! Document changes on the `configuration` exchange (docs/kazoo.md#object).

use serde_json::{Map, Value};

use super::fields::text;
use super::{EventError, EventKind, KazooEvent, decode_routing_key_segment};
use crate::ids::AccountId;

/// Kazoo's default `webhooks.object_types`: the document types an object hook can name.
pub const DEFAULT_OBJECT_TYPES: &[&str] =
    &["account", "callflow", "device", "faxbox", "media", "user", "vmbox", "fax", "mailbox_message", "call_recording"];

/// Name of the global database holding every account document.
const ACCOUNTS_DATABASE: &str = "accounts";

/// What happened to the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectAction {
    /// `doc_created`.
    Created,
    /// `doc_edited`.
    Edited,
    /// `doc_deleted` (soft deletes included).
    Deleted,
}

impl ObjectAction {
    /// The wire `Event-Name`, also the payload's `action` and the value of `custom_data.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "doc_created",
            Self::Edited => "doc_edited",
            Self::Deleted => "doc_deleted",
        }
    }

    /// The action of a wire `Event-Name`, if it is a document change.
    pub fn from_wire(event_name: &str) -> Option<Self> {
        match event_name {
            "doc_created" => Some(Self::Created),
            "doc_edited" => Some(Self::Edited),
            "doc_deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A document change that object hooks receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// Created, edited or deleted.
    pub action: ObjectAction,
    /// The document's `pvt_type` (`Type`), one of the configured object types.
    pub doc_type: String,
    /// The document id (`ID`).
    pub doc_id: String,
    /// The database the change happened in (`Database`).
    pub database: String,
}

/// Parses a document change. `segments` is the routing key
/// `<action>.<database>.<doc type>.<encoded doc id>` split on dots, used where the body lacks a field.
pub(super) fn parse<S: AsRef<str>>(
    segments: &[&str],
    body: &Map<String, Value>,
    object_types: &[S],
) -> Result<KazooEvent, EventError> {
    let from_key = |index: usize| segments.get(index).copied().filter(|segment| !segment.is_empty());
    let name = text(body, "Event-Name").or_else(|| from_key(0)).ok_or(EventError::MissingField("Event-Name"))?;
    let Some(action) = ObjectAction::from_wire(name) else {
        return Err(if name.starts_with("db_") {
            EventError::DatabaseEvent(name.to_owned())
        } else {
            EventError::UnsupportedEvent { category: "configuration".to_owned(), name: name.to_owned() }
        });
    };
    let doc_type = text(body, "Type").or_else(|| from_key(2)).ok_or(EventError::MissingField("Type"))?;
    if doc_type == "database" {
        return Err(EventError::DatabaseEvent(name.to_owned()));
    }
    if !object_types.iter().any(|known| known.as_ref() == doc_type) {
        return Err(EventError::UnwatchedObjectType(doc_type.to_owned()));
    }
    let database = text(body, "Database").or_else(|| from_key(1)).ok_or(EventError::MissingField("Database"))?;
    let doc_id = match text(body, "ID") {
        Some(id) => id.to_owned(),
        None => from_key(3).map(decode_routing_key_segment).ok_or(EventError::MissingField("ID"))?,
    };
    let account_id = if database == ACCOUNTS_DATABASE {
        // Only account documents live there, and their id is the account id.
        if doc_type != "account" {
            return Err(EventError::NotAccountScoped(database.to_owned()));
        }
        doc_id
            .parse::<AccountId>()
            .map_err(|_| EventError::InvalidField { field: "ID", reason: "not an account id" })?
    } else {
        let account_id =
            account_id_from_database(database).ok_or_else(|| EventError::NotAccountScoped(database.to_owned()))?;
        if doc_type == "account" {
            return Err(EventError::DuplicateAccountChange);
        }
        account_id
    };
    let event = ObjectEvent { action, doc_type: doc_type.to_owned(), doc_id, database: database.to_owned() };
    Ok(KazooEvent { kind: EventKind::Object(event), account_id: Some(account_id) })
}

/// The account owning an account database or account MODB, in any of Kazoo's spellings:
/// `account%2F3a%2F4b%2F5c...`, `account/3a/4b/5c...`, optionally followed by `-YYYYMM`.
pub fn account_id_from_database(database: &str) -> Option<AccountId> {
    let rest = strip_prefix_ignore_case(database, "account%2f").or_else(|| database.strip_prefix("account/"))?;
    let mut hex = String::with_capacity(32);
    let mut remaining = rest;
    // Two 2-character levels, then the last 28 characters, each level separated like the prefix.
    for _ in 0..2 {
        let (level, tail) = (remaining.get(..2)?, remaining.get(2..)?);
        hex.push_str(level);
        remaining = strip_prefix_ignore_case(tail, "%2f").or_else(|| tail.strip_prefix('/'))?;
    }
    hex.push_str(remaining.get(..28)?);
    let suffix = remaining.get(28..)?;
    let is_modb_suffix = |suffix: &str| {
        suffix.strip_prefix('-').is_some_and(|month| month.len() == 6 && month.bytes().all(|b| b.is_ascii_digit()))
    };
    if !suffix.is_empty() && !is_modb_suffix(suffix) {
        return None;
    }
    hex.parse().ok()
}

/// `text` without `prefix`, compared ASCII case-insensitively (`%2F` and `%2f` both occur).
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_databases_in_every_spelling_name_their_account() {
        let expected: AccountId = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse().expect("valid id");
        for name in [
            "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d",
            "account%2f3a%2f4b%2f5c6d7e8f9a0b1c2d3e4f5a6b7c8d",
            "account/3a/4b/5c6d7e8f9a0b1c2d3e4f5a6b7c8d",
            "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d-202403",
            "account/3a/4b/5c6d7e8f9a0b1c2d3e4f5a6b7c8d-202403",
        ] {
            assert_eq!(account_id_from_database(name), Some(expected.clone()), "{name}");
        }
        for name in [
            "accounts",
            "webhooks",
            "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8",
            "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d-2024",
            "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8dx",
            "account%2F3A%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d",
        ] {
            assert_eq!(account_id_from_database(name), None, "{name}");
        }
    }
}
