//! Change notices: the API announces every hook and account change on the bus in Kazoo's
//! document-change format, so every router keeps its in-memory index current.

use serde_json::{Value, json};

use crate::ids::{AccountId, WebhookId};

/// The Kazoo exchange that carries document changes.
pub const CONFIGURATION_EXCHANGE: &str = "configuration";
/// The routing key of Kazoo's bulk re-enable message (docs/kazoo.md#bulk-re-enable).
pub const REENABLE_ROUTING_KEY: &str = "configuration.doc_type_update.webhook";

/// The `App-Name` of every message this system publishes.
pub(crate) const APP_NAME: &str = "webhooks";
/// The `App-Version` of every message this system publishes.
pub(crate) const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `doc_created`.
    Created,
    /// `doc_edited`.
    Edited,
    /// `doc_deleted`.
    Deleted,
}

impl Action {
    /// Kazoo's event name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "doc_created",
            Self::Edited => "doc_edited",
            Self::Deleted => "doc_deleted",
        }
    }

    fn from_wire(name: &str) -> Option<Self> {
        match name {
            "doc_created" => Some(Self::Created),
            "doc_edited" => Some(Self::Edited),
            "doc_deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// One change that routers must apply to their index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A hook document changed.
    Webhook {
        /// What happened.
        action: Action,
        /// The hook.
        id: WebhookId,
        /// Its owner.
        account_id: AccountId,
    },
    /// An account document changed.
    Account {
        /// What happened.
        action: Action,
        /// The account.
        id: AccountId,
    },
    /// The auto-disabled hooks of an account (and of its descendants) were re-enabled.
    Reenabled {
        /// The account.
        account_id: AccountId,
        /// Its descendants too.
        descendants: bool,
    },
}

/// Why a message is not a change notice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// A field is missing or not a valid id.
    #[error("change notice without a valid {0}")]
    Field(&'static str),
    /// A document type or event this system does not track.
    #[error("not a hook or account change: {0}")]
    Unrelated(String),
}

impl Change {
    /// The routing key and body of the notice, as Kazoo publishes document changes.
    pub fn to_message(&self, node: &str, msg_id: &str) -> (String, Value) {
        let (routing_key, mut body) = match self {
            Self::Webhook { action, id, account_id } => (
                format!("{}.webhooks.webhook.{id}", action.as_str()),
                json!({"ID": id, "Type": "webhook", "Database": "webhooks", "Account-ID": account_id,
                       "Event-Name": action.as_str()}),
            ),
            Self::Account { action, id } => (
                format!("{}.accounts.account.{id}", action.as_str()),
                json!({"ID": id, "Type": "account", "Database": "accounts", "Account-ID": id,
                       "Event-Name": action.as_str()}),
            ),
            Self::Reenabled { account_id, descendants } => (
                REENABLE_ROUTING_KEY.to_owned(),
                json!({"Type": "webhook", "Action": if *descendants { "descendants" } else { "account" },
                       "Account-ID": account_id, "Event-Name": "doc_type_update"}),
            ),
        };
        if let Value::Object(fields) = &mut body {
            fields.insert("Event-Category".into(), json!("configuration"));
            fields.insert("App-Name".into(), json!(APP_NAME));
            fields.insert("App-Version".into(), json!(APP_VERSION));
            fields.insert("Node".into(), json!(node));
            fields.insert("Msg-ID".into(), json!(msg_id));
        }
        (routing_key, body)
    }

    /// Reads a notice published by [`Change::to_message`] (or by Kazoo itself).
    pub fn parse(body: &Value) -> Result<Self, NoticeError> {
        let text = |key: &'static str| body.get(key).and_then(Value::as_str).ok_or(NoticeError::Field(key));
        let event = text("Event-Name")?;
        let doc_type = text("Type")?;
        if event == "doc_type_update" && doc_type == "webhook" {
            let account_id = text("Account-ID")?.parse().map_err(|_| NoticeError::Field("Account-ID"))?;
            return Ok(Self::Reenabled { account_id, descendants: text("Action")? == "descendants" });
        }
        let action = Action::from_wire(event).ok_or_else(|| NoticeError::Unrelated(event.to_owned()))?;
        match doc_type {
            "webhook" => Ok(Self::Webhook {
                action,
                id: text("ID")?.parse().map_err(|_| NoticeError::Field("ID"))?,
                account_id: text("Account-ID")?.parse().map_err(|_| NoticeError::Field("Account-ID"))?,
            }),
            "account" => Ok(Self::Account { action, id: text("ID")?.parse().map_err(|_| NoticeError::Field("ID"))? }),
            other => Err(NoticeError::Unrelated(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_survives_its_own_message() {
        let hook = WebhookId::generate();
        let account = AccountId::generate();
        let changes = [
            Change::Webhook { action: Action::Created, id: hook.clone(), account_id: account.clone() },
            Change::Webhook { action: Action::Deleted, id: hook.clone(), account_id: account.clone() },
            Change::Account { action: Action::Edited, id: account.clone() },
            Change::Reenabled { account_id: account.clone(), descendants: true },
            Change::Reenabled { account_id: account.clone(), descendants: false },
        ];
        for change in changes {
            let (_, body) = change.to_message("node", "msg");
            assert_eq!(Change::parse(&body), Ok(change));
        }
    }

    #[test]
    fn routing_keys_follow_kazoo_document_changes() {
        let hook: WebhookId = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b".parse().expect("id");
        let account: AccountId = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse().expect("id");
        let (key, body) =
            Change::Webhook { action: Action::Edited, id: hook, account_id: account.clone() }.to_message("n", "m");
        assert_eq!(key, "doc_edited.webhooks.webhook.5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b");
        assert_eq!(body["Event-Category"], "configuration");
        assert_eq!(body["Database"], "webhooks");
        let (key, _) = Change::Account { action: Action::Deleted, id: account.clone() }.to_message("n", "m");
        assert_eq!(key, "doc_deleted.accounts.account.3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d");
        let (key, body) = Change::Reenabled { account_id: account, descendants: true }.to_message("n", "m");
        assert_eq!((key.as_str(), &body["Action"]), (REENABLE_ROUTING_KEY, &json!("descendants")));
    }

    #[test]
    fn other_documents_are_not_changes() {
        let body = json!({"Event-Name": "doc_edited", "Type": "device", "ID": "x"});
        assert_eq!(Change::parse(&body), Err(NoticeError::Unrelated("device".into())));
        assert_eq!(Change::parse(&json!({"Type": "webhook"})), Err(NoticeError::Field("Event-Name")));
    }
}
