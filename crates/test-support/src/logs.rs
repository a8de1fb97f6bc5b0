//! Logs captured for the tests that check what the services log, and the forms a secret could be
//! logged (or answered, or published) in.

use std::io;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything logged to it, kept for the test to read.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// A subscriber logging here, as JSON lines, everything: every crate at every level, `trace`
    /// included, and every span when it starts and when it ends, with its fields.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("trace")
            .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
            .with_writer(move || writer.clone())
            .finish()
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("the log buffer")).into_owned()
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("the log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The forms a secret could take in a log line or a message: its bytes as text, in hex (either
/// case), in base64 (standard and URL-safe), and as Rust's debug list of bytes.
pub fn secret_forms(bytes: &[u8]) -> Vec<String> {
    let mut forms = vec![
        hex::encode(bytes),
        hex::encode_upper(bytes),
        STANDARD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        format!("{bytes:?}"),
    ];
    forms.extend(std::str::from_utf8(bytes).ok().map(str::to_owned));
    forms
}

/// The Standard Webhooks signing secret of `key` (`whsec_` and its base64), and the forms it and
/// its key could leak in.
pub fn signing_secret(key: &[u8]) -> (String, Vec<String>) {
    let secret = format!("whsec_{}", STANDARD.encode(key));
    let mut forms = secret_forms(secret.as_bytes());
    forms.extend(secret_forms(key));
    (secret, forms)
}
