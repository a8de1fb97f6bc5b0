//! `proto-schemas/openapi.json` against the API it describes: the description is well formed and
//! its schemas compile; its paths and methods are exactly the routes served; and real answers
//! (successes and errors) conform to the schema documented for their path, method and status.
//!
//! The route table lives in a private module, so the served routes are read two ways: the path
//! patterns from the route-table sources, and each path's methods from the server itself (the
//! `Allow` header of its 405 answer).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Registry, Validator};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use webhooks_model::attempt::{Answer as CalloutAnswer, SentRequest, attempt_document};
use webhooks_model::ids::WebhookId;
use webhooks_model::job::DeliveryJob;
use webhooks_model::webhook::{DeliveryTarget, Format, HttpVerb};
use webhooks_storage::NewAttempt;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::db::TestDatabase;
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

/// A path with its parameters anonymized, so that `{rest:.*}` and `{path}` compare equal.
fn shape(template: &str) -> String {
    let mut shape = String::new();
    let mut depth = 0;
    for character in template.chars() {
        match character {
            '{' => {
                if depth == 0 {
                    shape.push_str("{}");
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth == 0 => shape.push(character),
            _ => {}
        }
    }
    shape
}

/// The path patterns registered by the route table and the operational endpoints, read from
/// their sources: every string literal there that is a path (`"/..."`, or `"{account}/..."`
/// built on the account prefix).
fn served_path_shapes() -> BTreeSet<String> {
    let mut shapes = BTreeSet::new();
    for source in ["crates/api/src/routes/mod.rs", "crates/api/src/ops.rs"] {
        let text = std::fs::read_to_string(repository_path(source)).expect("the route sources");
        let code = text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for literal in code.split('"').skip(1).step_by(2) {
            let path = if let Some(rest) = literal.strip_prefix("{account}") {
                format!("/v2/accounts/{{account_id}}{rest}")
            } else if literal.starts_with('/') {
                literal.to_owned()
            } else {
                continue;
            };
            shapes.insert(shape(&path.replace("{{", "{").replace("}}", "}")));
        }
    }
    shapes
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

/// A concrete request path for a documented template.
fn concrete(template: &str, account: &str, webhook: &str, sample: &str) -> String {
    template
        .replace("{account_id}", account)
        .replace("{webhook_id}", webhook)
        .replace("{sample_id}", sample)
        .replace("{attempt_id}", "0a1b2c3d")
        .replace("{path}", "anything/else")
}

#[tokio::test(flavor = "multi_thread")]
async fn documented_routes_are_exactly_the_served_routes() {
    let api = OpenApi::load();
    let documented = api.routes();

    // No path pattern served without a description, none described that is not served.
    let documented_shapes: BTreeSet<String> = documented.keys().map(|template| shape(template)).collect();
    assert_eq!(served_path_shapes(), documented_shapes, "served path patterns (left) and documented paths (right)");

    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let token = app.master_token().await;
    let client = &app.client;
    // A well-formed hook id that does not exist: operations on it cannot change anything.
    let hook = WebhookId::generate().to_string();
    let sample = webhooks_model::samples::sample_ids()[0];
    let method_not_allowed = api.doc["components"]["responses"]["MethodNotAllowed"].clone();
    for (template, methods) in &documented {
        let path = concrete(template, &app.master_id, &hook, sample);
        // Every method a path serves is named in the Allow header of a method it does not serve.
        let refused = client.send(Method::TRACE, &path, Some(&token), None).await;
        match refused.header("allow") {
            Some(allow) => {
                let served: BTreeSet<String> = allow.split(',').map(|method| method.trim().to_lowercase()).collect();
                assert_eq!(&served, methods, "{template}: served (left) and documented (right) methods");
                api.check_response(&refused, &method_not_allowed, &format!("TRACE {template}"));
            }
            // The operational endpoints are plain routes: other methods fall through to the
            // route table's unknown-path answer.
            None => {
                assert!(
                    ["/healthz", "/readyz", "/metrics"].contains(&template.as_str()),
                    "{template}: no Allow on {}",
                    refused.status
                );
                assert_eq!(refused.status, StatusCode::NOT_FOUND, "{template}");
                assert_eq!(refused.body["message"], "not_found", "{template}");
                assert_eq!(methods, &BTreeSet::from(["get".to_owned()]), "{template}");
            }
        }
        // Every documented method is served, and answers as documented.
        for method in methods {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({"data": {}}));
            let answer = client.send(method.clone(), &path, Some(&token), body.as_ref()).await;
            assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {template}: {}", answer.body);
            assert!(
                !(answer.status == StatusCode::NOT_FOUND && answer.body["message"] == "not_found"),
                "{method} {template} is not routed: {}",
                answer.body
            );
            api.check(&answer, template, &method);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_answers_conform_to_the_description() {
    let api = OpenApi::load();
    let app = TestApp::spawn(TestDatabase::sqlite().await).await;
    let client = &app.client;
    let account = app.master_id.as_str();
    let hooks = "/v2/accounts/{account_id}/webhooks";
    let hook_path = "/v2/accounts/{account_id}/webhooks/{webhook_id}";
    let at = |template: &str, hook: &str| concrete(template, account, hook, "webhooks_channel_create");

    let auth =
        client.send(Method::PUT, "/v2/api_auth", None, Some(&json!({"data": {"api_key": app.master_key}}))).await;
    api.check(&auth, "/v2/api_auth", &Method::PUT);
    let token = auth.body["auth_token"].as_str().expect("a token").to_owned();
    let token = Some(token.as_str());

    let hook_body = json!({"data": {"name": "New calls", "uri": "https://hooks.example.com/new", "hook": "channel_create",
        "retries": "3", "custom_data": {"crm": "zendesk"}, "ui_metadata": {"origin": "monster"}, "group": "crm",
        "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}});
    let created = client.send(Method::PUT, &at(hooks, ""), token, Some(&hook_body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    api.check(&created, hooks, &Method::PUT);
    let id = created.data()["id"].as_str().expect("an id").to_owned();
    let job = DeliveryJob {
        event_id: "9c1f0a7b3e".into(),
        hook_id: id.parse().expect("a hook id"),
        account_id: account.parse().expect("an account id"),
        hook_event: "CHANNEL_CREATE".into(),
        target: DeliveryTarget {
            uri: "https://hooks.example.com/new".into(),
            http_verb: HttpVerb::Post,
            format: Format::FormData,
            retries: 3,
            custom_request_headers: None,
        },
        attempt: 0,
        custom_data: created.data()["custom_data"].as_object().cloned(),
        payload: Default::default(),
        published_at_ms: 0,
        test: false,
        trace_parent: None,
    };

    for (method, path, body) in [
        (Method::GET, hooks, None),
        (Method::GET, hook_path, None),
        (Method::PATCH, hook_path, Some(json!({"data": {"enabled": false}}))),
        (Method::POST, hook_path, Some(hook_body.clone())),
    ] {
        let answer = client.send(method.clone(), &at(path, &id), token, body.as_ref()).await;
        assert!(answer.status.is_success(), "{method} {path}: {}", answer.body);
        api.check(&answer, path, &method);
    }
    let listed = client
        .send(Method::GET, &format!("{}?page_size=1&filter_hook=channel_create", at(hooks, "")), token, None)
        .await;
    api.check(&listed, hooks, &Method::GET);
    assert_eq!(listed.data().as_array().map(Vec::len), Some(1), "{}", listed.body);

    // Attempts as the dispatcher records them: one answered failure and one client error.
    let now = webhooks_model::time::gregorian_now();
    let headers =
        vec![("X-Hook-ID".to_owned(), id.clone()), ("Content-Type".into(), "application/x-www-form-urlencoded".into())];
    let sent = SentRequest { headers: &headers, body: b"call_id=c1" };
    let answers = [
        CalloutAnswer::Response { status: 500, headers: vec![("Server".into(), "nginx".into())], body: "oops".into() },
        CalloutAnswer::ClientError {
            class: webhooks_model::attempt::OutcomeClass::Connect,
            text: "failed_connect: econnrefused".into(),
        },
    ];
    let attempts: Vec<NewAttempt> = answers
        .iter()
        .enumerate()
        .map(|(index, answer)| NewAttempt {
            id: webhooks_model::ids::random_id(),
            account_id: job.account_id.clone(),
            hook_id: job.hook_id.clone(),
            created: now - 10 + index as i64,
            doc: attempt_document(&job, sent, answer, 2, 40),
            job: None,
        })
        .collect();
    app.store.insert_attempts(&attempts).await.expect("attempts stored");
    for template in
        ["/v2/accounts/{account_id}/webhooks/attempts", "/v2/accounts/{account_id}/webhooks/{webhook_id}/attempts"]
    {
        let answer = client.send(Method::GET, &at(template, &id), token, None).await;
        assert_eq!(answer.data().as_array().map(Vec::len), Some(2), "{template}: {}", answer.body);
        api.check(&answer, template, &Method::GET);
    }
    // No dispatcher runs here: the test callout is published, and answered as pending.
    let test_path = "/v2/accounts/{account_id}/webhooks/{webhook_id}/test";
    let tested = client.send(Method::PUT, &at(test_path, &id), token, None).await;
    assert_eq!(tested.status, StatusCode::ACCEPTED, "{}", tested.body);
    api.check(&tested, test_path, &Method::PUT);
    let bad_window = client
        .send(
            Method::GET,
            &format!("{}?created_from=10&created_to=5", at("/v2/accounts/{account_id}/webhooks/attempts", "")),
            token,
            None,
        )
        .await;
    assert_eq!(bad_window.status, StatusCode::BAD_REQUEST);
    api.check(&bad_window, "/v2/accounts/{account_id}/webhooks/attempts", &Method::GET);

    // The system scope, without a token where none is needed.
    for (template, token) in [
        ("/v2/webhooks", None),
        ("/v2/webhooks", token),
        ("/v2/webhooks/samples", None),
        ("/v2/webhooks/samples/{sample_id}", None),
        ("/v2/accounts/{account_id}/webhooks/samples", token),
        ("/v2/accounts/{account_id}/webhooks/samples/{sample_id}", token),
        ("/healthz", None),
        ("/readyz", None),
        ("/metrics", None),
    ] {
        let answer = client.send(Method::GET, &at(template, ""), token, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{template}: {}", answer.body);
        api.check(&answer, template, &Method::GET);
    }

    // Accounts.
    let child = client
        .send(
            Method::PUT,
            &at("/v2/accounts/{account_id}", ""),
            token,
            Some(&json!({"data": {"name": "Acme", "realm": "acme.example.net"}})),
        )
        .await;
    api.check(&child, "/v2/accounts/{account_id}", &Method::PUT);
    let child_id = child.data()["id"].as_str().expect("an account id").to_owned();
    for template in [
        "/v2/accounts/{account_id}",
        "/v2/accounts/{account_id}/children",
        "/v2/accounts/{account_id}/descendants",
        "/v2/accounts/{account_id}/api_key",
    ] {
        let answer = client.send(Method::GET, &at(template, ""), token, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{template}: {}", answer.body);
        api.check(&answer, template, &Method::GET);
    }
    let reenabled = client
        .send(
            Method::PATCH,
            &at("/v2/accounts/{account_id}/descendants/webhooks", ""),
            token,
            Some(&json!({"data": {"re-enable": true}})),
        )
        .await;
    api.check(&reenabled, "/v2/accounts/{account_id}/descendants/webhooks", &Method::PATCH);
    assert_eq!(reenabled.status, StatusCode::OK);

    // An event handed over HTTP.
    let fixture = std::fs::read_to_string(repository_path("crates/model/fixtures/amqp-events/CHANNEL_CREATE.json"))
        .expect("a fixture");
    let fixture: Value = serde_json::from_str(&fixture).expect("fixture JSON");
    let ingested = client.send(Method::POST, "/v2/events", token, Some(&fixture["body"])).await;
    assert_eq!(ingested.status, StatusCode::ACCEPTED, "{}", ingested.body);
    api.check(&ingested, "/v2/events", &Method::POST);

    // Errors, each in the shape documented for its path.
    let errors = [
        (Method::PUT, hooks, "", token, Some(json!({"data": {"name": "x", "hook": "nope"}})), StatusCode::BAD_REQUEST),
        (Method::GET, hooks, "", None, None, StatusCode::UNAUTHORIZED),
        (Method::GET, hooks, "", Some("not-a-token"), None, StatusCode::UNAUTHORIZED),
        (Method::PUT, "/v2/webhooks", "", token, Some(json!({"data": {}})), StatusCode::FORBIDDEN),
        (Method::GET, hook_path, "0123456789abcdef0123456789abcdef", token, None, StatusCode::NOT_FOUND),
        (
            Method::PUT,
            hooks,
            "",
            token,
            Some(json!({"data": {"name": "big", "padding": "x".repeat(70_000)}})),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (Method::DELETE, "/v2/accounts/{account_id}", "", token, None, StatusCode::FORBIDDEN),
    ];
    for (method, template, hook, token, body, status) in errors {
        let answer = client.send(method.clone(), &at(template, hook), token, body.as_ref()).await;
        assert_eq!(answer.status, status, "{method} {template}: {}", answer.body);
        api.check(&answer, template, &method);
    }
    let unknown_sample = client.send(Method::GET, "/v2/webhooks/samples/nope", None, None).await;
    api.check(&unknown_sample, "/v2/webhooks/samples/{sample_id}", &Method::GET);
    assert_eq!(unknown_sample.status, StatusCode::NOT_FOUND);
    let bad_page = client.send(Method::GET, &format!("{}?page_size=0", at(hooks, "")), token, None).await;
    assert_eq!(bad_page.status, StatusCode::NOT_FOUND);
    api.check(&bad_page, hooks, &Method::GET);
    let wrong_method = client.send(Method::DELETE, &at(hooks, ""), token, None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    api.check_response(&wrong_method, &api.doc["components"]["responses"]["MethodNotAllowed"], "DELETE on webhooks");

    // Deletions last.
    let deleted = client.send(Method::DELETE, &at(hook_path, &id), token, None).await;
    api.check(&deleted, hook_path, &Method::DELETE);
    assert_eq!(deleted.status, StatusCode::OK);
    let gone =
        client.send(Method::DELETE, &concrete("/v2/accounts/{account_id}", &child_id, "", ""), token, None).await;
    api.check(&gone, "/v2/accounts/{account_id}", &Method::DELETE);
    assert_eq!(gone.status, StatusCode::OK);
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
