//! Crossbar's validation-error shape: `{"<field path>": {"<rule>": {"message": ..., ...}}}`.

use serde_json::{Map, Value};

/// Every validation failure of one request, keyed by dotted field path, then rule name.
///
/// A later error on the same field replaces the earlier one, as Kazoo does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValidationErrors {
    fields: Map<String, Value>,
}

impl ValidationErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One error: `field` failed `rule`; `detail` holds `message` and optionally `target`,
    /// `value`, `cause`.
    pub fn single(field: &str, rule: &str, detail: Value) -> Self {
        let mut errors = Self::new();
        errors.add(field, rule, detail);
        errors
    }

    /// Records that `field` failed `rule`, replacing any earlier error of that field.
    pub fn add(&mut self, field: &str, rule: &str, detail: Value) {
        let mut rules = Map::new();
        rules.insert(rule.to_owned(), detail);
        self.fields.insert(field.to_owned(), Value::Object(rules));
    }

    /// Adds every error of `other`.
    pub fn extend(&mut self, other: ValidationErrors) {
        self.fields.extend(other.fields);
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The error of one field, if any.
    pub fn field(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The `data` object of Crossbar's error envelope.
    pub fn into_json(self) -> Value {
        Value::Object(self.fields)
    }

    /// Ok when nothing failed, else these errors.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields: Vec<&str> = self.fields.keys().map(String::as_str).collect();
        write!(f, "validation failed on {}", fields.join(", "))
    }
}

impl std::error::Error for ValidationErrors {}

/// Crossbar's field path: keys joined by dots, a dot inside a key written `%2E`.
pub(crate) fn field_path<S: AsRef<str>>(segments: &[S]) -> String {
    segments.iter().map(|segment| segment.as_ref().replace('.', "%2E")).collect::<Vec<_>>().join(".")
}
