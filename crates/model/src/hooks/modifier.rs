//! The modifiers of a hook type (docs/kazoo.md#modifiers): the `custom_data` keys it requires,
//! with the values each accepts.

use serde_json::Value;

use super::error::DefinitionsError;
use super::hook_type::HookType;

/// Notification types only super-duper admins may see or subscribe to (docs/kazoo.md#modifiers).
pub const SUPER_ADMIN_ONLY_NOTIFICATION_TYPES: &[&str] = &["system_alert", "webhook_disabled"];

/// True when `notification_type` may only be used by super-duper admins.
pub fn is_super_admin_only_notification(notification_type: &str) -> bool {
    SUPER_ADMIN_ONLY_NOTIFICATION_TYPES.contains(&notification_type)
}

/// Which values a modifier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModifierValues {
    /// `"type": "array"`: the value must be one of these items (the `object` hook).
    OneOf(Vec<String>),
    /// `"type": "object"`: the value must be a key of `items` (the `notifications` hook).
    KeyOf(Vec<String>),
}

impl ModifierValues {
    /// Every accepted value, in definition order.
    pub fn values(&self) -> &[String] {
        match self {
            Self::OneOf(values) | Self::KeyOf(values) => values,
        }
    }
}

/// One `custom_data` key a hook type requires, with its accepted values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modifier {
    pub(super) key: String,
    pub(super) values: ModifierValues,
    /// Values hidden from, and refused to, callers that are not super-duper admins.
    pub(super) restricted: Vec<String>,
}

impl Modifier {
    /// The `custom_data` key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Every value of the definition, restricted ones included.
    pub fn values(&self) -> &ModifierValues {
        &self.values
    }

    /// The values a caller may use, in definition order.
    pub fn allowed(&self, superduper_admin: bool) -> Vec<&str> {
        self.values
            .values()
            .iter()
            .map(String::as_str)
            .filter(|value| superduper_admin || !self.is_restricted(value))
            .collect()
    }

    /// True when a caller may set the modifier to `value`.
    pub fn accepts(&self, value: &str, superduper_admin: bool) -> bool {
        self.values.values().iter().any(|allowed| allowed == value) && (superduper_admin || !self.is_restricted(value))
    }

    fn is_restricted(&self, value: &str) -> bool {
        self.restricted.iter().any(|restricted| restricted == value)
    }
}

/// The modifier `key` of the hook type `hook`, from its served `definition`.
pub(super) fn parse_modifier(hook: &str, key: &str, definition: &Value) -> Result<Modifier, DefinitionsError> {
    let malformed =
        |reason| DefinitionsError::MalformedModifier { hook: hook.to_owned(), modifier: key.to_owned(), reason };
    let items = definition.get("items");
    let values = match (definition.get("type").and_then(Value::as_str), items) {
        (Some("array"), Some(Value::Array(items))) => ModifierValues::OneOf(
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| malformed("array items must be strings"))?,
        ),
        (Some("object"), Some(Value::Object(items))) => ModifierValues::KeyOf(items.keys().cloned().collect()),
        _ => return Err(malformed("expected type array with an items array or type object with an items object")),
    };
    // Only the notification types carry an audience restriction (Kazoo restricts exactly these).
    let restricted = if hook == HookType::Notifications.as_str() {
        values.values().iter().filter(|value| is_super_admin_only_notification(value)).cloned().collect()
    } else {
        Vec::new()
    };
    Ok(Modifier { key: key.to_owned(), values, restricted })
}
