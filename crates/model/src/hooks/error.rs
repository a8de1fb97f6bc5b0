//! The errors of hook definitions.

/// Why a set of hook definitions cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    /// The definitions are not an array of objects.
    #[error("hook definitions must be a JSON array of objects")]
    NotAnArray,
    /// A definition lacks one of its string fields.
    #[error("hook definition #{index} has no string field '{field}'")]
    MissingField {
        /// Position of the definition in the array.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
    /// Two definitions share an id, or one is named like the reserved `all` type.
    #[error("hook definition id '{0}' is used twice or reserved")]
    DuplicateId(String),
    /// A modifier is not `{"type": "array", "items": [strings]}` or `{"type": "object", "items": {..}}`.
    #[error("modifier '{modifier}' of hook '{hook}' is malformed: {reason}")]
    MalformedModifier {
        /// The hook type.
        hook: String,
        /// The modifier key.
        modifier: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The embedded webhook schema is not JSON.
    #[error("the webhook schema is not JSON")]
    SchemaJson(#[from] serde_json::Error),
    /// The embedded webhook schema lacks a part the hook enum or defaults need.
    #[error("the webhook schema has no {0}")]
    SchemaShape(&'static str),
    /// The webhook schema does not compile with these definitions' hook enum.
    #[error("the webhook schema does not compile")]
    SchemaCompile(#[source] Box<jsonschema::ValidationError<'static>>),
}
