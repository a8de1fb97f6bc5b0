//! Trace context through the real binary: an event posted with a `traceparent` reaches its
//! callout in the same trace, and `webhooks serve`, given `WEBHOOKS_OTEL_ENDPOINT`, exports the
//! spans of the API, the router and the dispatcher to a fake OTLP/HTTP collector, in that trace
//! and each the parent of the next.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::json;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::trace::TraceParent;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::receiver::{Captured, Receiver};
use webhooks_test_support::store::{create_account, create_hook};

use crate::process::{Webhooks, run_to_end};

const MASTER_KEY: &str = "e2e-traces-master-key-0123456789";
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// The exported spans of `trace`, by name, with the service.name of each, from every request
/// the collector received (each must be an OTLP/HTTP protobuf export).
fn exported_spans(requests: &[Captured], trace: &TraceParent) -> BTreeMap<String, Vec<(String, Span)>> {
    let trace_id = trace.trace_id().to_u128().to_be_bytes();
    let mut spans: BTreeMap<String, Vec<(String, Span)>> = BTreeMap::new();
    for request in requests {
        assert_eq!((request.method.as_str(), request.path()), ("POST", "/v1/traces"));
        assert_eq!(request.header("content-type"), Some("application/x-protobuf"));
        let export = ExportTraceServiceRequest::decode(request.body.as_slice()).expect("an OTLP trace export");
        for resource_spans in export.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
                .map(|value| match value {
                    any_value::Value::StringValue(name) => name.clone(),
                    other => panic!("service.name is not a string: {other:?}"),
                })
                .expect("every resource names its service");
            for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                if span.trace_id == trace_id {
                    spans.entry(span.name.clone()).or_default().push((service.clone(), span));
                }
            }
        }
    }
    spans
}

/// The one span called `name`, exported by `webhooks-serve`.
fn only<'a>(spans: &'a BTreeMap<String, Vec<(String, Span)>>, name: &str) -> &'a Span {
    let found = spans.get(name).unwrap_or_else(|| panic!("no {name} span in the trace: {:?}", spans.keys()));
    assert_eq!(found.len(), 1, "one {name} span");
    assert_eq!(found[0].0, "webhooks-serve");
    &found[0].1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_posted_events_trace_reaches_its_callout_and_every_services_span_reaches_the_collector() {
    let database = TestDatabase::sqlite().await;
    let collector = Receiver::answering(200).await;
    let receiver = Receiver::answering(200).await;
    let env = [
        ("WEBHOOKS_DATABASE_URL", database.url().to_owned()),
        ("WEBHOOKS_MASTER_API_KEY", MASTER_KEY.to_owned()),
        ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("WEBHOOKS_OTEL_ENDPOINT", format!("http://127.0.0.1:{}/", collector.port())),
    ];
    assert!(run_to_end(&["migrate"], &env).await.success());
    // Stored before the start, so the router's index has the hook once it is ready.
    let store = database.store().await;
    let account = AccountId::generate();
    create_account(&store, &account, None, json!({})).await;
    let hook = json!({"name": "traced", "uri": receiver.url("/traced"), "hook": "channel_create",
                      "http_verb": "post", "format": "json", "retries": 0});
    create_hook(&store, &WebhookId::generate(), &account, &hook).await;
    let serve = Webhooks::start(&["serve"], &env).await;
    serve.wait_ready().await;
    let token = serve.client.token(MASTER_KEY).await;

    let inbound: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("valid");
    let event = json!({"Event-Category": "call_event", "Event-Name": "CHANNEL_CREATE", "Call-ID": "traced-call",
                       "Custom-Channel-Vars": {"Account-ID": account}});
    let answer = reqwest::Client::new()
        .request(Method::POST, format!("{}/v2/events", serve.client.base_url()))
        .header("X-Auth-Token", &token)
        .header("traceparent", inbound.to_string())
        .json(&event)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let callout = receiver.wait_for(1, PATIENCE).await.remove(0);
    let sent: TraceParent = callout.header("traceparent").expect("a traceparent header").parse().expect("valid");
    assert_eq!((sent.trace_id(), sent.flags()), (inbound.trace_id(), inbound.flags()));

    // SIGTERM flushes the spans still buffered before the process exits.
    assert!(serve.stop().await.success());
    let spans = exported_spans(&collector.requests(), &inbound);
    let ingest = only(&spans, "events.ingest");
    let routed = only(&spans, "router.event");
    let delivered = only(&spans, "deliver");
    // The client's span, then each service's span the parent of the next, then the callout.
    assert_eq!(ingest.parent_span_id, inbound.parent_id().to_be_bytes());
    assert_eq!(routed.parent_span_id, ingest.span_id);
    assert_eq!(delivered.parent_span_id, routed.span_id);
    assert_eq!(sent.parent_id().to_be_bytes().as_slice(), delivered.span_id.as_slice());
}
