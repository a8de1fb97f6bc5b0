//! The webhook document's JSON schema compiled with the registered hook enum (as Kazoo installs it), Kazoo's non-strict
//! coercion and defaults, and schema errors in Crossbar's shape.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Map, Value, json};

use super::error::DefinitionsError;
use crate::errors::{ValidationErrors, field_path};

/// The JSON schema (draft-04) of the webhook document's public fields. Its `hook` enum is replaced
/// by the registered definitions' when a [`crate::hooks::HookDefinitions`] is built.
pub const WEBHOOK_SCHEMA: &str = include_str!("../../../../proto-schemas/webhook.json");

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
    pub(crate) fn coerce(&self, fields: &mut Map<String, Value>) {
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
    pub(crate) fn apply_defaults(&self, fields: &mut Map<String, Value>) {
        for (name, default) in &self.defaults {
            if !fields.contains_key(name) {
                fields.insert(name.clone(), default.clone());
            }
        }
    }

    /// Every schema error, in Crossbar's shape.
    pub(crate) fn check(&self, fields: &Map<String, Value>) -> ValidationErrors {
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
