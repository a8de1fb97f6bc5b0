//! The example Kazoo messages of `crates/model/fixtures/amqp-events`, each with the hook it
//! fires, the job payload and the HTTP request it must become.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Every fixture as `(file name, fixture)`, by file name.
pub fn amqp_event_fixtures() -> Vec<(String, Value)> {
    // Every crate sits in `crates/`, next to the model's.
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/fixtures/amqp-events");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("fixtures directory")
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture readable");
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            (name, serde_json::from_str(&text).expect("fixture JSON"))
        })
        .collect()
}
