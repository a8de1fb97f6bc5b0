//! Identifiers in Kazoo's format: 32 lowercase hexadecimal characters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Why a string is not a Kazoo identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not 32 lowercase hexadecimal characters")]
pub struct InvalidId(pub String);

/// True when `value` has Kazoo's id shape.
fn is_kazoo_id(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh random id in Kazoo's shape (a v4 UUID without dashes).
pub fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

macro_rules! kazoo_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(random_id())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                if is_kazoo_id(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidId(value.to_owned()))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                if is_kazoo_id(&value) {
                    Ok(Self(value))
                } else {
                    Err(InvalidId(value))
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::try_from(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

kazoo_id!(
    /// The id of an account.
    AccountId
);
kazoo_id!(
    /// The id of a webhook document.
    WebhookId
);

/// Identifies one event for one hook: sent as `X-Event-ID` (and `webhook-id` when the callout is
/// signed) and the same on every attempt, so a receiver can de-duplicate. This system writes
/// them in Kazoo's id shape ([`MessageKey::event_id`], [`EventId::random`]); one read back is
/// kept as it is, whatever its shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// A fresh random id, for an event that has no message of its own (a test callout).
    pub fn random() -> Self {
        Self(random_id())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for EventId {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for EventId {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What identifies one inbound bus message: a SHA-256 digest of its routing key and body. A
/// message the broker delivers again (after a consumer crash or a lost acknowledgement) has the
/// same key, so the deliveries derived from it get the same event ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageKey([u8; 32]);

impl MessageKey {
    /// The key of a message received with `routing_key` whose body is `body`.
    pub fn of(routing_key: &str, body: &[u8]) -> Self {
        let mut hasher = Self::hasher(routing_key);
        hasher.update(body);
        Self(hasher.finalize().into())
    }

    /// The key of a message whose body `write_body` writes into the digest (a body held as a
    /// value is serialized straight into it, never into a buffer).
    pub fn written(routing_key: &str, write_body: impl FnOnce(&mut dyn std::io::Write)) -> Self {
        let mut hasher = Self::hasher(routing_key);
        write_body(&mut hasher);
        Self(hasher.finalize().into())
    }

    /// A digest that has taken the routing key, ready for the body.
    fn hasher(routing_key: &str) -> Sha256 {
        let mut hasher = Sha256::new();
        hasher.update(routing_key.as_bytes());
        // A byte no routing key contains, so key and body cannot trade bytes.
        hasher.update([0]);
        hasher
    }

    /// The event id of this message's delivery to `hook`, in Kazoo's id shape: the first 128
    /// bits of SHA-256(key, hook id), as hex. Stable across redeliveries of the message, distinct
    /// per hook, so a receiver can de-duplicate on it.
    pub fn event_id(&self, hook: &WebhookId) -> EventId {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        hasher.update(hook.as_str().as_bytes());
        let digest = hasher.finalize();
        EventId(hex::encode(&digest[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_32_lowercase_hex_characters() {
        assert!("3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d".parse::<AccountId>().is_ok());
        assert!("3A4B5C6D7E8F9A0B1C2D3E4F5A6B7C8D".parse::<AccountId>().is_err());
        assert!("3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8".parse::<AccountId>().is_err());
        assert!("3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8g".parse::<WebhookId>().is_err());
        assert!("".parse::<WebhookId>().is_err());
    }

    #[test]
    fn generated_ids_have_the_kazoo_shape() {
        let id = AccountId::generate();
        assert!(id.as_str().parse::<AccountId>().is_ok());
        assert_ne!(id, AccountId::generate());
    }

    #[test]
    fn event_ids_are_stable_per_message_and_hook_and_differ_otherwise() {
        let hook = WebhookId::generate();
        let other_hook = WebhookId::generate();
        let key = MessageKey::of("call.CHANNEL_CREATE.c1", br#"{"Call-ID":"c1"}"#);
        let id = key.event_id(&hook);
        assert!(id.as_str().parse::<WebhookId>().is_ok(), "{id} has the Kazoo id shape");
        assert_eq!(id, MessageKey::of("call.CHANNEL_CREATE.c1", br#"{"Call-ID":"c1"}"#).event_id(&hook));
        assert_ne!(id, key.event_id(&other_hook));
        assert_ne!(id, MessageKey::of("call.CHANNEL_CREATE.c1", br#"{"Call-ID":"c2"}"#).event_id(&hook));
        assert_ne!(id, MessageKey::of("call.CHANNEL_ANSWER.c1", br#"{"Call-ID":"c1"}"#).event_id(&hook));
        let written = MessageKey::written("call.CHANNEL_CREATE.c1", |out| {
            out.write_all(br#"{"Call-ID":"c1"}"#).expect("a digest takes every byte");
        });
        assert_eq!(written, key, "a body written into the digest counts as its bytes");
    }
}
