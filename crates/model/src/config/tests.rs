//! The defaults file against the settings' shape, and the documented values.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::retry::FailureLimits;

/// `text` with its commented-out examples (`# key = value`) made settings.
fn with_examples(text: &str) -> String {
    let is_key = |key: &str| !key.is_empty() && key.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_');
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(example) if example.split_once(" = ").is_some_and(|(key, _)| is_key(key)) => example,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The leaves of `value` by their dotted path (`dispatcher.prefetch`); arrays are leaves.
fn leaves(value: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    let mut found = BTreeMap::new();
    let mut pending = vec![(String::new(), value)];
    while let Some((path, value)) = pending.pop() {
        match value {
            serde_json::Value::Object(fields) => pending.extend(
                fields
                    .into_iter()
                    .map(|(key, value)| (if path.is_empty() { key } else { format!("{path}.{key}") }, value)),
            ),
            leaf => {
                found.insert(path, leaf);
            }
        }
    }
    found
}

#[test]
fn defaults_toml_sets_every_setting_and_nothing_else() {
    let document: toml::Table = toml::from_str(&with_examples(DEFAULTS)).expect("defaults.toml parses");
    // A field that is not optional and has no value there fails here.
    let settings: Settings = toml::Value::Table(document.clone()).try_into().expect("defaults.toml is read whole");
    let written = leaves(serde_json::to_value(&document).expect("the document serialises"));
    // Written back, the settings show an optional field without an example as null.
    let read = leaves(serde_json::to_value(&settings).expect("settings serialise"));
    let unread: Vec<_> = written.keys().filter(|key| !read.contains_key(*key)).collect();
    assert!(unread.is_empty(), "keys of defaults.toml that no setting reads: {unread:?}");
    let missing: Vec<_> = read.iter().filter(|(key, value)| written.get(*key) != Some(value)).collect();
    assert!(missing.is_empty(), "settings whose value (or example) defaults.toml lacks or differs: {missing:?}");
}

#[test]
fn the_defaults_are_the_documented_values() {
    let documented = Settings {
        database_url: "sqlite://webhooks.db".into(),
        database_pool_size: 8,
        migrate_on_start: true,
        listen: "127.0.0.1:8000".into(),
        admin_listen: None,
        master_api_key: None,
        node: None,
        allow_private_targets: false,
        log_format: LogFormat::Text,
        amqp_url: None,
        cluster_id: None,
        otel_endpoint: None,
        bus: BusConfig { prefix: "webhooks".into(), queue_type: QueueType::Classic, queue_expires_seconds: None },
        api: ApiConfig {
            workers: 2,
            max_body_bytes: 1 << 20,
            token_lifetime_seconds: 3600,
            default_page_size: 50,
            account_cache_seconds: 5,
            listing_cache_seconds: 60,
            test_wait_seconds: 20,
        },
        router: RouterConfig { prefetch: 500, reload_interval_seconds: 300, max_jobs_per_message: 100 },
        dispatcher: DispatcherConfig {
            connect_timeout_seconds: 5.0,
            total_timeout_seconds: 15.0,
            prefetch: 256,
            concurrency: 1024,
            max_connections_per_host: 64,
            retry_delays_seconds: vec![5.0, 30.0, 120.0, 600.0],
            retry_jitter: 0.2,
            max_retry_after_seconds: 3600,
            log_successful_attempts: false,
            auto_disable: true,
            failure_threshold: 6,
            failure_window_seconds: 60,
            attempt_retention_days: 30,
            prune_interval_seconds: 3600,
            max_response_body_bytes: 64 * 1024,
            slow_lane_after_ms: 500,
            slow_lane_prefetch: 256,
            bookkeeping_capacity: 20_000,
            bookkeeping_capacity_bytes: 64 * 1024 * 1024,
        },
        kazoo: KazooConfig {
            crossbar_url: None,
            api_key: None,
            public_keys: Vec::new(),
            tokeninfo: false,
            master_account_id: None,
            key_refetch_interval_seconds: 60,
            tokeninfo_cache_seconds: 60,
            verified_tokens_capacity: 100_000,
            request_timeout_seconds: 5,
            accounts_reconcile_seconds: 300,
            couch_url: None,
            payload_compat: PayloadCompat::Master,
        },
    };
    assert_eq!(Settings::default(), documented);
    assert_eq!(
        FailureLimits::from_config(&DispatcherConfig::default()),
        FailureLimits { threshold: 6, window: Duration::from_secs(60) }
    );
}

#[test]
fn passwords_are_redacted_from_database_urls() {
    assert_eq!(redact_url("postgres://user:secret@db:5432/x"), "postgres://user:***@db:5432/x");
    assert_eq!(redact_url("postgres://user@db/x"), "postgres://user@db/x");
    assert_eq!(redact_url("sqlite://webhooks.db"), "sqlite://webhooks.db");
    assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
    assert_eq!(
        redact_url("amqp://a:one@mq1:5672/%2f,amqp://a:two@mq2:5672/%2f"),
        "amqp://a:***@mq1:5672/%2f,amqp://a:***@mq2:5672/%2f"
    );
    assert_eq!(redact_url("postgres://u:secret@db1,db2/x"), "postgres://u:***@db1,db2/x");
}

#[test]
fn debug_output_hides_the_master_key() {
    let settings = Settings {
        master_api_key: Some("topsecret".into()),
        amqp_url: Some("amqp://user:hidden@mq/%2f".into()),
        kazoo: KazooConfig {
            crossbar_url: Some("http://user:concealed@crossbar:8000".into()),
            api_key: Some("kazoosecret".into()),
            ..KazooConfig::default()
        },
        ..Settings::default()
    };
    let shown = format!("{settings:?}");
    for secret in ["topsecret", "hidden", "concealed", "kazoosecret"] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert!(shown.contains("crossbar:8000"), "{shown}");
}

#[test]
fn kazoo_mode_is_on_with_a_crossbar_url_and_keys_are_kid_file_pairs() {
    assert!(!KazooConfig::default().enabled());
    assert_eq!(KazooConfig::default().stray_setting(), None);
    let forgotten = KazooConfig { tokeninfo: true, ..KazooConfig::default() };
    assert_eq!(forgotten.stray_setting(), Some("tokeninfo"));
    let kazoo = KazooConfig {
        crossbar_url: Some("http://crossbar:8000".into()),
        public_keys: vec!["96247ed90b4bec8294c09ae6ece923a2=/etc/kazoo/key.pem".into(), " k2 = b.pem ".into()],
        ..KazooConfig::default()
    };
    assert!(kazoo.enabled());
    assert_eq!(kazoo.stray_setting(), None);
    assert_eq!(
        kazoo.public_key_files(),
        Ok(vec![
            ("96247ed90b4bec8294c09ae6ece923a2".to_owned(), PathBuf::from("/etc/kazoo/key.pem")),
            ("k2".to_owned(), PathBuf::from("b.pem")),
        ])
    );
    for wrong in ["no-equals", "=file.pem", "kid="] {
        let kazoo = KazooConfig { public_keys: vec![wrong.into()], ..KazooConfig::default() };
        assert_eq!(kazoo.public_key_files(), Err(InvalidPublicKeyEntry(wrong.into())));
    }
}
