//! The documented paths and methods against the routes served.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::json;
use webhooks_model::ids::WebhookId;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::db::TestDatabase;

use super::{OpenApi, concrete, repository_path};

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
