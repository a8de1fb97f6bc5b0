//! Trace context for the services' spans: the one place where a W3C trace parent
//! ([`webhooks_model::trace::TraceParent`]), carried across the bus in message headers, meets
//! `tracing` and OpenTelemetry.
//!
//! A span that works on behalf of an inbound event or job calls [`continue_trace`]: its log lines
//! get the trace id, and, when the binary exports spans (`WEBHOOKS_OTEL_ENDPOINT`), the exported
//! span joins the caller's trace. Without the OpenTelemetry layer installed this is a cheap lookup
//! that finds nothing, and ids are drawn here instead.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use webhooks_model::trace::TraceParent;

/// The span field [`continue_trace`] fills: spans declare it `tracing::field::Empty`.
pub const TRACE_ID_FIELD: &str = "trace_id";

/// Puts `span` in `parent`'s trace (in a new trace when there is none), records its
/// [`TRACE_ID_FIELD`], and returns the trace parent to hand on from inside it: the exported span's
/// own ids when spans are exported, else `parent`'s child (or a new root) with a fresh span id.
///
/// Call it before the span is first entered: an exported span's parent is fixed from then on.
pub fn continue_trace(span: &Span, parent: Option<&TraceParent>) -> TraceParent {
    // A disabled span (the router's per-event one, unless debug logs or the export want it) has
    // nothing to join: the ids are drawn here.
    let exported = if span.is_disabled() { None } else { export_in(span, parent) };
    let handed_on = exported.unwrap_or_else(|| parent.map_or_else(TraceParent::new_root, TraceParent::child));
    span.record(TRACE_ID_FIELD, tracing::field::display(handed_on.trace_id()));
    handed_on
}

/// Makes the exported span behind `span` a child of `parent` (a root without one) and returns
/// its own ids; `None` when spans are not exported.
fn export_in(span: &Span, parent: Option<&TraceParent>) -> Option<TraceParent> {
    let parent_context = match parent {
        Some(parent) => opentelemetry::Context::new().with_remote_span_context(span_context(parent)),
        // An empty context makes the exported span a root, whatever span encloses it.
        None => opentelemetry::Context::new(),
    };
    span.set_parent(parent_context).ok()?;
    let own = span.context().span().span_context().clone();
    TraceParent::from_parts(
        u128::from_be_bytes(own.trace_id().to_bytes()),
        u64::from_be_bytes(own.span_id().to_bytes()),
        own.trace_flags().to_u8(),
    )
}

/// `parent` as OpenTelemetry's remote span context.
fn span_context(parent: &TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(parent.trace_id().to_u128().to_be_bytes()),
        SpanId::from_bytes(parent.parent_id().to_be_bytes()),
        TraceFlags::new(parent.flags()),
        true,
        TraceState::default(),
    )
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use opentelemetry::trace::TracerProvider;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// What [`Captured`] was given.
    static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    /// A log output into [`LOGS`].
    struct Captured;

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            LOGS.lock().expect("the log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn parent() -> TraceParent {
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("valid")
    }

    /// The OpenTelemetry span behind `span`.
    fn exported(span: &Span) -> SpanContext {
        span.context().span().span_context().clone()
    }

    #[test]
    fn without_export_the_trace_goes_on_with_a_fresh_span_id() {
        let span = tracing::info_span!("work", trace_id = tracing::field::Empty);
        let handed_on = continue_trace(&span, Some(&parent()));
        assert_eq!((handed_on.trace_id(), handed_on.flags()), (parent().trace_id(), 1));
        assert_ne!(handed_on.parent_id(), parent().parent_id());
        let started = continue_trace(&span, None);
        assert_ne!(started.trace_id(), parent().trace_id());
    }

    #[test]
    fn log_lines_inside_the_span_carry_the_trace_id() {
        let subscriber = tracing_subscriber::fmt().with_writer(|| Captured).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("work", trace_id = tracing::field::Empty);
            continue_trace(&span, Some(&parent()));
            span.in_scope(|| tracing::info!("inside"));
        });
        let logs = String::from_utf8(LOGS.lock().expect("the log buffer").clone()).expect("text");
        assert!(
            logs.contains(&format!("work{{trace_id={}}}: webhooks_bus::trace::tests: inside", parent().trace_id())),
            "{logs}"
        );
    }

    #[test]
    fn an_exported_span_joins_the_parents_trace_and_hands_on_its_own_id() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let enclosing = tracing::info_span!("enclosing");
            let _inside = enclosing.enter();

            let joined = tracing::info_span!("joined", trace_id = tracing::field::Empty);
            let handed_on = continue_trace(&joined, Some(&parent()));
            let own = exported(&joined);
            assert_eq!(own.trace_id(), TraceId::from_bytes(parent().trace_id().to_u128().to_be_bytes()));
            assert_eq!(handed_on.to_string(), format!("00-{}-{}-01", own.trace_id(), own.span_id()));

            // Without a parent the span starts a trace of its own, not the enclosing span's.
            let root = tracing::info_span!("root", trace_id = tracing::field::Empty);
            let handed_on = continue_trace(&root, None);
            let own = exported(&root);
            assert_ne!(own.trace_id(), exported(&enclosing).trace_id());
            assert_eq!(handed_on.to_string(), format!("00-{}-{}-01", own.trace_id(), own.span_id()));
        });
    }
}
