//! Hook definitions (docs/kazoo.md#hook-definitions): the hook types a webhook may subscribe to,
//! their modifiers (the `custom_data` keys that filter events, docs/kazoo.md#modifiers) and the
//! listing served by `GET /v2/webhooks`.
//!
//! The definitions also install the `hook` enum into the webhook schema, as Kazoo does at start-up,
//! so the accepted hook types and the served list can never disagree.

use serde_json::{Map, Value};

mod error;
mod hook_type;
mod modifier;
mod schema;

pub use error::DefinitionsError;
pub use hook_type::HookType;
pub use modifier::{Modifier, ModifierValues, SUPER_ADMIN_ONLY_NOTIFICATION_TYPES, is_super_admin_only_notification};
pub use schema::WEBHOOK_SCHEMA;
pub(crate) use schema::WebhookSchema;

use modifier::parse_modifier;

/// The hook type that receives every event; it has no definition and no modifiers.
const ALL_HOOKS: &str = HookType::All.as_str();

/// The hook type whose `type` modifier lists [`ANY_VALUE`] followed by the configurable object
/// types.
const OBJECT_HOOK: &str = HookType::Object.as_str();

/// The `custom_data` filter value matching every object type, action or notification type: Kazoo
/// spells it as the hook type that receives every event.
pub const ANY_VALUE: &str = HookType::All.as_str();

/// The default definitions: exactly the `data` Kazoo serves to a super-duper admin.
const DEFAULT_DEFINITIONS: &str = include_str!("../../data/hook-definitions.json");

/// One hook type: its served document and its parsed modifiers.
#[derive(Debug, Clone)]
pub struct HookDefinition {
    id: String,
    name: String,
    /// The definition exactly as served (`id`, `name`, `description`, `modifiers`?).
    document: Map<String, Value>,
    modifiers: Vec<Modifier>,
}

impl HookDefinition {
    /// The hook type (`channel_create`, `object`, ...).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The friendly name, the listing's sort key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The modifiers `custom_data` must satisfy; empty for most hook types.
    pub fn modifiers(&self) -> &[Modifier] {
        &self.modifiers
    }

    /// The served document; restricted modifier values are left out unless `superduper_admin`.
    pub fn to_json(&self, superduper_admin: bool) -> Value {
        let mut document = self.document.clone();
        if !superduper_admin {
            for modifier in self.modifiers.iter().filter(|modifier| !modifier.restricted.is_empty()) {
                let items = document
                    .get_mut("modifiers")
                    .and_then(|modifiers| modifiers.get_mut(&modifier.key))
                    .and_then(|definition| definition.get_mut("items"))
                    .and_then(Value::as_object_mut);
                if let Some(items) = items {
                    for restricted in &modifier.restricted {
                        items.shift_remove(restricted);
                    }
                }
            }
        }
        Value::Object(document)
    }

    fn parse(index: usize, value: &Value) -> Result<Self, DefinitionsError> {
        let document = value.as_object().ok_or(DefinitionsError::NotAnArray)?;
        let text = |field: &'static str| {
            document
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(DefinitionsError::MissingField { index, field })
        };
        let id = text("id")?;
        let name = text("name")?;
        text("description")?;
        let modifiers = match document.get("modifiers") {
            None => Vec::new(),
            Some(Value::Object(modifiers)) => modifiers
                .iter()
                .map(|(key, definition)| parse_modifier(&id, key, definition))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(DefinitionsError::MalformedModifier {
                    hook: id,
                    modifier: String::new(),
                    reason: "modifiers is not an object",
                });
            }
        };
        Ok(Self { id, name, document: document.clone(), modifiers })
    }
}

/// The registered hook types and the webhook schema built from them.
#[derive(Debug, Clone)]
pub struct HookDefinitions {
    definitions: Vec<HookDefinition>,
    schema: WebhookSchema,
}

impl Default for HookDefinitions {
    /// Kazoo's default set.
    fn default() -> Self {
        let data: Value = serde_json::from_str(DEFAULT_DEFINITIONS).expect("the embedded hook definitions are JSON");
        Self::from_json(&data).expect("the embedded hook definitions are valid")
    }
}

impl HookDefinitions {
    /// Definitions from the served shape: an array of `{id, name, description, modifiers?}`.
    pub fn from_json(data: &Value) -> Result<Self, DefinitionsError> {
        let items = data.as_array().ok_or(DefinitionsError::NotAnArray)?;
        let mut definitions: Vec<HookDefinition> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let definition = HookDefinition::parse(index, item)?;
            if definition.id == ALL_HOOKS || definitions.iter().any(|known| known.id == definition.id) {
                return Err(DefinitionsError::DuplicateId(definition.id));
            }
            definitions.push(definition);
        }
        let hook_enum = hook_enum(&definitions);
        let schema = WebhookSchema::compile(&hook_enum)?;
        Ok(Self { definitions, schema })
    }

    /// The same definitions with the `object` hook's `type` modifier listing `all` followed by
    /// `object_types` (Kazoo's `webhooks.object_types` setting).
    pub fn with_object_types<S: AsRef<str>>(mut self, object_types: &[S]) -> Self {
        let items: Vec<String> =
            std::iter::once(ANY_VALUE).chain(object_types.iter().map(AsRef::as_ref)).map(str::to_owned).collect();
        if let Some(object) = self.definitions.iter_mut().find(|definition| definition.id == OBJECT_HOOK) {
            let served = object
                .document
                .get_mut("modifiers")
                .and_then(|modifiers| modifiers.get_mut("type"))
                .and_then(Value::as_object_mut);
            if let Some(served) = served {
                served.insert("items".into(), items.iter().cloned().map(Value::String).collect());
            }
            if let Some(modifier) = object.modifiers.iter_mut().find(|modifier| modifier.key == "type") {
                modifier.values = ModifierValues::OneOf(items);
            }
        }
        self
    }

    /// The `GET /v2/webhooks` data: every definition, descending by name, with the super-admin-only
    /// notification types left out for other callers.
    pub fn listing(&self, superduper_admin: bool) -> Vec<Value> {
        let mut sorted: Vec<&HookDefinition> = self.definitions.iter().collect();
        sorted.sort_by(|left, right| right.name.cmp(&left.name));
        sorted.into_iter().map(|definition| definition.to_json(superduper_admin)).collect()
    }

    /// The values `hook` accepts: `all` plus every definition id, sorted.
    pub fn hook_enum(&self) -> Vec<String> {
        hook_enum(&self.definitions)
    }

    /// The definition of one hook type; `None` for `all` and unknown types.
    pub fn definition(&self, hook: &str) -> Option<&HookDefinition> {
        self.definitions.iter().find(|definition| definition.id == hook)
    }

    /// The modifiers of one hook type; empty for `all`, unknown types and types without any.
    pub fn modifiers(&self, hook: &str) -> &[Modifier] {
        self.definition(hook).map(HookDefinition::modifiers).unwrap_or_default()
    }

    /// Every definition, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &HookDefinition> {
        self.definitions.iter()
    }

    /// The webhook schema with this set's `hook` enum installed.
    pub(crate) fn schema(&self) -> &WebhookSchema {
        &self.schema
    }
}

fn hook_enum(definitions: &[HookDefinition]) -> Vec<String> {
    let mut values: Vec<String> = std::iter::once(ALL_HOOKS.to_owned())
        .chain(definitions.iter().map(|definition| definition.id.clone()))
        .collect();
    values.sort();
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded definitions: the `data` Kazoo serves to a super-duper admin.
    fn kazoo_data() -> Value {
        serde_json::from_str(DEFAULT_DEFINITIONS).expect("the hook definitions are JSON")
    }

    #[test]
    fn the_listing_is_sorted_descending_by_name_as_kazoo_serves_it() {
        let ids: Vec<String> = HookDefinitions::default()
            .listing(false)
            .iter()
            .map(|item| item["id"].as_str().expect("an id").to_owned())
            .collect();
        let expected = [
            "sms",
            "object",
            "notifications",
            "mms",
            "channel_destroy",
            "channel_create",
            "channel_bridge",
            "channel_answer",
            "parking",
        ];
        assert_eq!(ids, expected);
    }

    #[test]
    fn an_admin_listing_equals_kazoos_data_in_order() {
        let listing = HookDefinitions::default().listing(true);
        let expected = kazoo_data();
        assert_eq!(Value::Array(listing.clone()), expected);
        // Value equality ignores key order; the served text must not.
        assert_eq!(
            serde_json::to_string(&listing).expect("serializes"),
            serde_json::to_string(&expected).expect("serializes")
        );
    }

    #[test]
    fn a_non_admin_listing_lacks_the_super_admin_only_notification_types() {
        let listing = HookDefinitions::default().listing(false);
        let mut expected = kazoo_data();
        let items = expected[2]["modifiers"]["type"]["items"].as_object_mut().expect("notification types");
        assert!(items.shift_remove("system_alert").is_some());
        assert!(items.shift_remove("webhook_disabled").is_some());
        assert_eq!(Value::Array(listing.clone()), expected);
        let served = listing[2]["modifiers"]["type"]["items"].as_object().expect("notification types");
        assert!(served.contains_key("voicemail_new") && served.contains_key("all"));
        assert!(!served.contains_key("system_alert") && !served.contains_key("webhook_disabled"));
    }

    #[test]
    fn the_listing_is_sorted_whatever_the_registration_order() {
        let mut reversed = kazoo_data();
        reversed.as_array_mut().expect("an array").reverse();
        let definitions = HookDefinitions::from_json(&reversed).expect("valid definitions");
        assert_eq!(Value::Array(definitions.listing(true)), kazoo_data());
    }

    #[test]
    fn the_hook_enum_is_all_plus_the_sorted_ids() {
        let expected = [
            "all",
            "channel_answer",
            "channel_bridge",
            "channel_create",
            "channel_destroy",
            "mms",
            "notifications",
            "object",
            "parking",
            "sms",
        ];
        assert_eq!(HookDefinitions::default().hook_enum(), expected);
    }

    #[test]
    fn the_schema_file_carries_the_default_hook_enum() {
        let schema: Value = serde_json::from_str(WEBHOOK_SCHEMA).expect("json");
        let file_enum: Vec<String> =
            serde_json::from_value(schema["properties"]["hook"]["enum"].clone()).expect("strings");
        assert_eq!(file_enum, HookDefinitions::default().hook_enum());
    }

    #[test]
    fn modifiers_come_from_the_definitions() {
        let definitions = HookDefinitions::default();
        let object: Vec<&str> = definitions.modifiers("object").iter().map(Modifier::key).collect();
        assert_eq!(object, ["type", "action"]);
        assert!(definitions.modifiers("channel_create").is_empty());
        assert!(definitions.modifiers(ALL_HOOKS).is_empty());
        assert!(definitions.modifiers("nope").is_empty());
        let notification_type = &definitions.modifiers("notifications")[0];
        assert!(notification_type.accepts("system_alert", true));
        assert!(!notification_type.accepts("system_alert", false));
        assert!(notification_type.accepts("voicemail_new", false));
        assert!(!notification_type.allowed(false).contains(&"webhook_disabled"));
        assert!(notification_type.allowed(true).contains(&"webhook_disabled"));
    }

    #[test]
    fn object_types_can_be_configured() {
        let definitions = HookDefinitions::default().with_object_types(&["user", "device"]);
        let object_type = &definitions.modifiers("object")[0];
        assert_eq!(object_type.allowed(false), ["all", "user", "device"]);
        let listing = definitions.listing(false);
        assert_eq!(listing[1]["modifiers"]["type"]["items"], serde_json::json!(["all", "user", "device"]));
    }

    #[test]
    fn malformed_definitions_are_refused() {
        use serde_json::json;
        assert!(matches!(HookDefinitions::from_json(&json!({})), Err(DefinitionsError::NotAnArray)));
        assert!(matches!(
            HookDefinitions::from_json(&json!([{"id": "x", "name": "X"}])),
            Err(DefinitionsError::MissingField { index: 0, field: "description" })
        ));
        assert!(matches!(
            HookDefinitions::from_json(&json!([{"id": "all", "name": "A", "description": "d"}])),
            Err(DefinitionsError::DuplicateId(_))
        ));
        assert!(matches!(
            HookDefinitions::from_json(&json!([{"id": "x", "name": "X", "description": "d",
                                                "modifiers": {"type": {"type": "array", "items": [1]}}}])),
            Err(DefinitionsError::MalformedModifier { .. })
        ));
    }
}
