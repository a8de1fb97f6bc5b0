//! The class and `client_error` text of a failed callout, read from its error's cause chain.

use std::error::Error as StdError;

use webhooks_model::attempt::{Answer, OutcomeClass};

use super::guard::{BlockedTarget, ResolveError};

/// The class and `client_error` text of a failed exchange, from the error's cause chain.
pub(super) fn classify(error: &(dyn StdError + 'static)) -> Answer {
    let (class, text) = classify_chain(error);
    Answer::ClientError { class, text }
}

/// Walks the cause chain, looking inside `io::Error`s too (their `source` skips the error they
/// wrap, and TLS errors come wrapped twice).
fn classify_chain(error: &(dyn StdError + 'static)) -> (OutcomeClass, String) {
    let mut connect_phase = false;
    let mut io_kind = None;
    let mut decided = None;
    visit_causes(error, &mut |cause| {
        if let Some(legacy) = cause.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect_phase |= legacy.is_connect();
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() != std::io::ErrorKind::Other
        {
            io_kind.get_or_insert(io.kind());
        }
        decided = classify_one(cause);
        decided.is_some()
    });
    if let Some(found) = decided {
        return found;
    }
    let detail = innermost(error);
    match (connect_phase, io_kind) {
        (_, Some(std::io::ErrorKind::TimedOut)) => (OutcomeClass::Timeout, "failed_connect: timeout".into()),
        (true, Some(std::io::ErrorKind::ConnectionRefused)) => {
            (OutcomeClass::Connect, "failed_connect: econnrefused".into())
        }
        (true, _) => (OutcomeClass::Connect, format!("failed_connect: {detail}")),
        (false, _) => (OutcomeClass::Io, format!("closed: {detail}")),
    }
}

/// Calls `found` on `error` and each of its causes, outermost first, descending into the errors
/// `io::Error`s wrap; stops as soon as `found` returns true.
fn visit_causes<'a>(
    error: &'a (dyn StdError + 'static),
    found: &mut dyn FnMut(&'a (dyn StdError + 'static)) -> bool,
) -> bool {
    if found(error) {
        return true;
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        let inner: &'a (dyn StdError + 'static) = inner;
        return visit_causes(inner, found);
    }
    match error.source() {
        Some(source) => visit_causes(source, found),
        None => false,
    }
}

/// The class of one error of the chain, when it decides it.
fn classify_one(error: &(dyn StdError + 'static)) -> Option<(OutcomeClass, String)> {
    if let Some(blocked) = error.downcast_ref::<BlockedTarget>() {
        return Some((OutcomeClass::BlockedTarget, format!("blocked_target: {blocked}")));
    }
    if let Some(resolve) = error.downcast_ref::<ResolveError>() {
        return Some((OutcomeClass::Dns, format!("failed_connect: {resolve}")));
    }
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some((OutcomeClass::Tls, format!("tls: {tls}")));
    }
    None
}

/// The text of the deepest error of the chain: the most specific one.
fn innermost(error: &(dyn StdError + 'static)) -> String {
    let mut deepest = error;
    visit_causes(error, &mut |cause| {
        deepest = cause;
        false
    });
    deepest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::guard::BoxError;

    #[test]
    fn guard_errors_are_classified_through_the_chain() {
        let blocked: BoxError = BlockedTarget { host: "internal".into(), address: [10, 0, 0, 1].into() }.into();
        let wrapped = std::io::Error::other(blocked);
        let (class, text) = classify_chain(&wrapped);
        assert_eq!(class, OutcomeClass::BlockedTarget);
        assert_eq!(text, "blocked_target: internal resolves to 10.0.0.1, which is not a public address");
    }

    #[test]
    fn dns_and_tls_errors_get_their_classes() {
        let dns = ResolveError::NoAddress("nowhere.invalid".into());
        assert_eq!(classify_chain(&dns).0, OutcomeClass::Dns);
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(classify_chain(&tls).0, OutcomeClass::Tls);
        // hyper-rustls wraps tokio-rustls's error once more.
        let twice =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError));
        assert_eq!(classify_chain(&twice).0, OutcomeClass::Tls);
    }

    #[test]
    fn timeouts_and_other_io_errors_are_told_apart() {
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(classify_chain(&timed_out).0, OutcomeClass::Timeout);
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify_chain(&reset), (OutcomeClass::Io, "closed: reset".into()));
    }
}
