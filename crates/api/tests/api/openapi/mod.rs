//! `proto-schemas/openapi.json` against the API it describes: the description is well formed and
//! its schemas compile; its paths and methods are exactly the routes served; and real answers
//! (successes and errors) conform to the schema documented for their path, method and status.
//!
//! The route table lives in a private module, so the served routes are read two ways: the path
//! patterns from the route-table sources, and each path's methods from the server itself (the
//! `Allow` header of its 405 answer).

mod answers;
mod routes;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Registry, Validator};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use webhooks_test_support::http::Answer;

/// The `$id` base of the schemas in `proto-schemas/`; the description refers to them by file name.
const BASE: &str = "https://webhooks.invalid/proto-schemas/";

const METHODS: [&str; 8] = ["get", "put", "post", "patch", "delete", "head", "options", "trace"];

fn repository_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The description, with every file of `proto-schemas/` registered under its URI so that the
/// description's relative references (`webhook.json`, `attempt.json`, ...) resolve offline.
struct OpenApi {
    doc: Value,
    registry: Registry<'static>,
}

impl OpenApi {
    fn load() -> Self {
        let directory = repository_path("proto-schemas");
        let mut resources = Vec::new();
        let mut doc = Value::Null;
        for entry in std::fs::read_dir(&directory).unwrap_or_else(|error| panic!("{}: {error}", directory.display())) {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            let contents = read_json(&path);
            if name == "openapi.json" {
                doc = contents.clone();
            }
            // The description is no schema; as a 2020-12 resource its components resolve by pointer.
            let resource = Draft::Draft202012.create_resource(contents);
            resources.push((format!("{BASE}{name}"), resource));
        }
        assert!(doc.is_object(), "proto-schemas/openapi.json is missing");
        let registry = Registry::new()
            .extend(resources)
            .and_then(|builder| builder.prepare())
            .expect("the schemas form a registry");
        Self { doc, registry }
    }

    /// Compiles a schema taken out of the description: its local references are made to point
    /// into the registered description, since the schema is compiled on its own.
    fn compile(&self, schema: &Value) -> Result<Validator, String> {
        let mut schema = schema.clone();
        anchor_local_references(&mut schema);
        jsonschema::options()
            .with_registry(&self.registry)
            .with_base_uri(format!("{BASE}openapi-fragment.json"))
            .build(&schema)
            .map_err(|error| error.to_string())
    }

    fn operation(&self, template: &str, method: &str) -> &Value {
        let operation = &self.doc["paths"][template][method];
        assert!(operation.is_object(), "{} {template} is not documented", method.to_uppercase());
        operation
    }

    /// The documented response of an operation for `status`.
    fn response(&self, template: &str, method: &str, status: StatusCode) -> Value {
        let response = &self.operation(template, method)["responses"][status.as_str()];
        assert!(response.is_object(), "{} {template} does not document status {status}", method.to_uppercase());
        self.resolve(response).clone()
    }

    /// Follows a `#/components/...` reference.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str).and_then(|reference| reference.strip_prefix('#')) {
            Some(pointer) => self.doc.pointer(pointer).unwrap_or_else(|| panic!("dangling reference {pointer}")),
            None => value,
        }
    }

    /// Checks a real answer against the response documented for its path, method and status.
    #[track_caller]
    fn check(&self, answer: &Answer, template: &str, method: &Method) {
        let response = self.response(template, &method.as_str().to_lowercase(), answer.status);
        self.check_response(answer, &response, &format!("{method} {template}"));
    }

    #[track_caller]
    fn check_response(&self, answer: &Answer, response: &Value, what: &str) {
        // A text answer (the metrics) is checked by its media type: its grammar is Prometheus'.
        let content = response["content"].as_object().expect("documented content");
        if let Some(media) = content.keys().find(|media| media.starts_with("text/plain")) {
            let essence = |media: &str| media.split(';').next().unwrap_or_default().trim().to_owned();
            let sent = answer.header("content-type").unwrap_or_default();
            assert_eq!(essence(sent), essence(media), "{what}: content type");
            return;
        }
        let schema = &response["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{what}: no JSON schema documented for {}", answer.status);
        let validator = self.compile(schema).unwrap_or_else(|error| panic!("{what}: {error}"));
        let errors: Vec<String> = validator
            .iter_errors(&answer.body)
            .map(|error| format!("  at '{}': {error}", error.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} answered {} off its description:\n{}\n{}",
            answer.status,
            errors.join("\n"),
            answer.body
        );
        if let Some(headers) = response["headers"].as_object() {
            for name in headers.keys() {
                assert!(answer.header(name).is_some(), "{what}: documented header {name} is missing");
            }
        }
    }

    /// Every documented (path template, methods).
    fn routes(&self) -> BTreeMap<String, BTreeSet<String>> {
        let paths = self.doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .map(|(template, item)| {
                let methods =
                    METHODS.iter().filter(|method| item.get(**method).is_some()).map(|method| method.to_string());
                (template.clone(), methods.collect())
            })
            .collect()
    }
}

/// Prefixes `#...` references with the description's file name, recursively.
fn anchor_local_references(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match field {
                    Value::String(reference) if key == "$ref" && reference.starts_with('#') => {
                        *reference = format!("openapi.json{reference}");
                    }
                    other => anchor_local_references(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(anchor_local_references),
        _ => {}
    }
}

/// A concrete request path for a documented template.
fn concrete(template: &str, account: &str, webhook: &str, sample: &str) -> String {
    template
        .replace("{account_id}", account)
        .replace("{webhook_id}", webhook)
        .replace("{sample_id}", sample)
        .replace("{attempt_id}", "0a1b2c3d")
        .replace("{path}", "anything/else")
}

#[test]
fn the_description_is_well_formed_and_its_schemas_compile() {
    let api = OpenApi::load();
    let doc = &api.doc;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(
        schemes["XAuthToken"],
        json!({"type": "apiKey", "in": "header", "name": "X-Auth-Token",
        "description": schemes["XAuthToken"]["description"]})
    );

    let components = doc["components"]["schemas"].as_object().expect("component schemas");
    for (name, schema) in components {
        if let Err(error) = jsonschema::meta::validate(schema) {
            panic!("component {name} is not a valid schema: {error}");
        }
        api.compile(&json!({"$ref": format!("#/components/schemas/{name}")}))
            .unwrap_or_else(|error| panic!("component {name}: {error}"));
    }

    let mut operation_ids = BTreeSet::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let in_template: BTreeSet<String> = template
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        let path_parameters = |parameters: &Value| -> Vec<String> {
            parameters
                .as_array()
                .into_iter()
                .flatten()
                .map(|parameter| api.resolve(parameter))
                .filter(|parameter| parameter["in"] == "path")
                .map(|parameter| parameter["name"].as_str().expect("a name").to_owned())
                .collect()
        };
        for method in METHODS.iter().filter(|method| item.get(**method).is_some()) {
            let operation = &item[*method];
            let what = format!("{} {template}", method.to_uppercase());
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{what}: no operationId"));
            assert!(operation_ids.insert(id.to_owned()), "{what}: operationId {id} is not unique");
            let declared: BTreeSet<String> = path_parameters(&item["parameters"])
                .into_iter()
                .chain(path_parameters(&operation["parameters"]))
                .collect();
            assert_eq!(declared, in_template, "{what}: path parameters");
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let parameter = api.resolve(parameter);
                api.compile(&parameter["schema"]).unwrap_or_else(|error| panic!("{what}: parameter: {error}"));
            }
            let responses = operation["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{what}: no responses");
            for (status, response) in responses {
                assert!(status.parse::<u16>().is_ok_and(|code| (200..600).contains(&code)), "{what}: status {status}");
                let content = api.resolve(response)["content"].as_object().expect("response content");
                for (media, content) in content {
                    api.compile(&content["schema"]).unwrap_or_else(|error| panic!("{what} {status} {media}: {error}"));
                }
            }
            if let Some(body) = operation.get("requestBody") {
                for (media, content) in body["content"].as_object().expect("request content") {
                    api.compile(&content["schema"]).unwrap_or_else(|error| panic!("{what} request {media}: {error}"));
                }
            }
        }
    }
    // The webhook document is the one the API validates with.
    assert_eq!(components["Webhook"]["allOf"][0], json!({"$ref": "webhook.json"}));
}

#[test]
fn the_webhook_input_requires_the_modifiers_of_the_hook_definitions() {
    let api = OpenApi::load();
    let definitions = read_json(&repository_path("crates/model/data/hook-definitions.json"));
    let expected: BTreeMap<String, Value> = definitions
        .as_array()
        .expect("definitions")
        .iter()
        .filter_map(|definition| {
            let modifiers = definition.get("modifiers")?.as_object()?;
            let values = modifiers
                .iter()
                .map(|(key, modifier)| {
                    let allowed = match &modifier["items"] {
                        Value::Object(items) => items.keys().cloned().map(Value::String).collect(),
                        Value::Array(items) => items.clone(),
                        other => panic!("modifier {key}: items {other}"),
                    };
                    (key.clone(), Value::Array(allowed))
                })
                .collect::<Map<String, Value>>();
            Some((definition["id"].as_str().expect("an id").to_owned(), Value::Object(values)))
        })
        .collect();
    let branches = api.doc["components"]["schemas"]["WebhookInput"]["allOf"][2]["anyOf"].as_array().expect("branches");
    let described: BTreeMap<String, Value> = branches
        .iter()
        .filter_map(|branch| {
            let hook = branch["properties"]["hook"]["const"].as_str()?;
            let custom_data = &branch["properties"]["custom_data"];
            let values = custom_data["properties"]
                .as_object()
                .expect("modifier properties")
                .iter()
                .map(|(key, schema)| (key.clone(), schema["enum"].clone()))
                .collect::<Map<String, Value>>();
            let required: BTreeSet<&str> =
                custom_data["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
            assert_eq!(required, values.keys().map(String::as_str).collect(), "{hook}: every modifier is required");
            Some((hook.to_owned(), Value::Object(values)))
        })
        .collect();
    assert_eq!(described, expected);
    // Every other hook type takes any custom_data.
    let others = &branches[0]["properties"]["hook"]["not"]["enum"];
    assert_eq!(others, &json!(expected.keys().collect::<Vec<_>>()));
}
