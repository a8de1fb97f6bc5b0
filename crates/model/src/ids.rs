//! Identifiers in Kazoo's format: 32 lowercase hexadecimal characters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
}
