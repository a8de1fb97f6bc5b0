//! The model's integration tests, in one test binary: payloads against the example bus messages,
//! the JSON Schemas, and the validation of webhook documents.

mod payloads;
mod schemas;
mod validation;
