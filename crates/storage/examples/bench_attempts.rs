//! The attempt log at scale on PostgreSQL:
//! `cargo run --release -p webhooks-storage --example bench_attempts`.
//!
//! A database of its own (dropped at the end, also on failure) is migrated as the services
//! migrate it, then seeded once: 100,000 accounts in 100 trees five deep (each a four-way tree of
//! 1,000 accounts: a root, 4 resellers, then their customers), 1,000,000 hooks spread over them,
//! and 10,000,000 attempt records over the last 90 days, written in time order as the dispatcher
//! writes them, skewed over the hooks (a few failing hooks have thousands, most a handful). Each
//! record is what the dispatcher stores for a failed callout (`attempt_document` of a job built by
//! `job_for_document` from a sample payload, and that job), with ids of its own. The rows go in
//! through `COPY ... FROM STDIN` (psql), the attempts with their indexes dropped and made again
//! afterwards exactly as the migrations define them (checked), so the schema measured is the
//! production one; their documents are compressed with LZ4 (a session setting of the load).
//!
//! Then `WEBHOOKS_BENCH_RUNS` runs (default 3) on that one seeded database, each measuring through
//! the store's own functions, as the API and the dispatcher call them:
//! 1. the newest page (the API's default page size, 50) of one hook's attempts, in the API's
//!    default window (the last 31 days and one hour), for 1,000 random hooks: p50 and p99 (goal
//!    p99 under 20 ms); the same of one account's attempts for 1,000 random accounts (goal p99
//!    under 50 ms);
//! 2. a reseller's descendants (`Store::descendants`, what `GET /v2/accounts/{A}/descendants`
//!    lists) and their enabled hooks (`Store::enabled_webhooks_of` with descendants), for every
//!    reseller (about 250 descendants and 2,500 hooks each) and every root (999 and 10,000);
//! 3. pruning the oldest 1,000,000 records (`Store::prune_attempts`; each run the next million),
//!    goal under 60 s, while a writer inserts 50 records every 20 ms (`Store::insert_attempts`, as
//!    the dispatcher's writer does): its insert latency during the prune beside the 5 s before.
//!
//! Each run's figures are printed, then each figure's median and range with its goal.
//! `WEBHOOKS_BENCH_ATTEMPTS` sets the number of records (a quick try: 1000000).
//!
//! `bench_attempts --hooks-only URL` seeds only the accounts (under the master account when the
//! database has one) and the hooks into an existing, migrated database: the API's load test at
//! scale (tests/bench/api-scale.sh) runs on that.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly on setup errors")]

use std::io::{self, BufWriter, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::{Bool, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use webhooks_model::attempt::{Answer, OutcomeClass, SentRequest, attempt_document};
use webhooks_model::hooks::HookType;
use webhooks_model::ids::{AccountId, EventId, WebhookId};
use webhooks_model::job::{JobEvent, job_for_document};
use webhooks_model::payload::{Finishing, HookView};
use webhooks_model::samples::test_delivery;
use webhooks_model::time::gregorian_now;
use webhooks_storage::{NewAttempt, PageRequest, Store};
use webhooks_test_support::bench::{Goal, Metric, percentile};
use webhooks_test_support::db::TestDatabase;

/// Trees (roots) in the account forest.
const TREES: usize = 100;
/// Accounts per tree, its root included: a four-way tree of this size is five deep.
const TREE_SIZE: usize = 1_000;
/// Children per account in a tree.
const FAN_OUT: usize = 4;
/// Hooks spread over the accounts.
const HOOKS: usize = 1_000_000;
/// Attempt records, unless `WEBHOOKS_BENCH_ATTEMPTS` says otherwise.
const ATTEMPTS: usize = 10_000_000;
/// The records' span, newest now.
const SPAN_SECONDS: i64 = 90 * 86_400;
/// Records pruned per run.
const PRUNED: usize = 1_000_000;
/// Hooks and accounts whose newest page is read per run.
const LISTINGS: usize = 1_000;
/// The API's default page size (`api.default_page_size`).
const PAGE_SIZE: usize = 50;
/// The API's default listing window: Crossbar's widest, 31 days and one hour.
const WINDOW_SECONDS: i64 = 2_682_000;
/// The concurrent writer's batch and pace.
const WRITE_BATCH: usize = 50;
const WRITE_EVERY: Duration = Duration::from_millis(20);
/// How long the writer's latency is measured before a prune.
const BASELINE: Duration = Duration::from_secs(5);
/// Connections of the store measured: the production default (`database_pool_size`).
const POOL_SIZE: u32 = 8;

/// The hook types hooks are given in turn.
const HOOK_TYPES: [&str; 8] = [
    "channel_create",
    "channel_answer",
    "channel_destroy",
    "channel_bridge",
    "channel_create",
    "object",
    "notifications",
    "all",
];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, url] = args.as_slice()
        && flag == "--hooks-only"
    {
        let started = Instant::now();
        let forest = Forest::seed(url, 1);
        println!(
            "seeded {} accounts and {HOOKS} hooks in {:.0} s",
            forest.accounts.len(),
            started.elapsed().as_secs_f64()
        );
        return;
    }
    let attempts =
        std::env::var("WEBHOOKS_BENCH_ATTEMPTS").ok().and_then(|count| count.parse().ok()).unwrap_or(ATTEMPTS);
    let runs = std::env::var("WEBHOOKS_BENCH_RUNS").ok().and_then(|runs| runs.parse().ok()).unwrap_or(3_usize).max(1);
    let database = TestDatabase::postgres().await;
    let store = Store::connect(database.url(), POOL_SIZE).await.unwrap();
    store.migrate().await.unwrap();
    println!(
        "{} accounts in {TREES} trees five deep, {HOOKS} hooks, {attempts} attempt records over 90 days; \
         seeded once, measured in {runs} runs",
        TREES * TREE_SIZE
    );
    let seeding = Instant::now();
    let forest = Forest::seed(database.url(), 0);
    let hooks_seeded = seeding.elapsed();
    let now = gregorian_now();
    let oldest = now - SPAN_SECONDS;
    let timings = seed_attempts(database.url(), &forest, attempts, oldest);
    println!(
        "seeding: accounts and hooks {:.0} s, attempts {:.0} s (COPY {:.0} s, indexes {:.0} s, analyze {:.0} s); \
         total {:.0} s; attempts table {}",
        hooks_seeded.as_secs_f64(),
        timings.total().as_secs_f64(),
        timings.copy.as_secs_f64(),
        timings.indexes.as_secs_f64(),
        timings.analyze.as_secs_f64(),
        seeding.elapsed().as_secs_f64(),
        table_size(database.url()),
    );
    let forest = Arc::new(forest);
    let mut figures = Vec::new();
    for run in 1..=runs {
        let mut rng = StdRng::seed_from_u64(run as u64);
        // Each run prunes the next million: records are evenly spread over the span.
        let cutoff = oldest
            + i64::try_from(run * PRUNED.min(attempts / runs)).unwrap() * SPAN_SECONDS
                / i64::try_from(attempts).unwrap();
        let run_figures = run_once(&store, &forest, &mut rng, cutoff).await;
        println!("run {run}:");
        for metric in METRICS {
            println!("  {}", metric.show(&run_figures));
        }
        figures.push(run_figures);
    }
    println!("over {runs} runs (the verdict on the median; load {}):", load_average());
    for metric in METRICS {
        let mut values: Vec<f64> = figures.iter().map(metric.value).collect();
        println!("  {}", metric.summary(&mut values));
    }
    drop(store);
    drop(database);
}

/// One account of the forest: its id and its depth (0 for a tree's root, 1 for a reseller).
struct SeededAccount {
    id: AccountId,
    depth: usize,
}

/// The seeded accounts and hooks, as the measurements pick them.
struct Forest {
    accounts: Vec<SeededAccount>,
    /// Each hook's id and the position of its owner in `accounts`.
    hooks: Vec<(WebhookId, u32)>,
}

impl Forest {
    /// Writes the accounts (under the master account when the database names one) and the hooks
    /// into the migrated database at `url`; `seed` varies the ids.
    fn seed(url: &str, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let master = master_path(url);
        let now = gregorian_now();
        let mut accounts = Vec::with_capacity(TREES * TREE_SIZE);
        let mut paths: Vec<String> = Vec::with_capacity(TREES * TREE_SIZE);
        let mut rows = String::new();
        for tree in 0..TREES {
            let first = accounts.len();
            for member in 0..TREE_SIZE {
                let id: AccountId = random_id(&mut rng);
                // A heap-ordered four-way tree: member i hangs under member (i - 1) / 4.
                let (parent, depth) = if member == 0 {
                    (master.as_ref().map(|(id, path)| (id.clone(), path.clone())), 0)
                } else {
                    let parent = first + (member - 1) / FAN_OUT;
                    let parent_account: &SeededAccount = &accounts[parent];
                    (Some((parent_account.id.to_string(), paths[parent].clone())), parent_account.depth + 1)
                };
                let path = format!("{}{id}/", parent.as_ref().map_or("", |(_, path)| path.as_str()));
                let doc = json!({
                    "realm": format!("{id}.sip.example.com"),
                    "timezone": "America/New_York",
                    "language": "en-us",
                    "is_reseller": depth <= 1,
                    "enabled": true,
                });
                let row = [
                    id.to_string(),
                    format!("account {tree}-{member}"),
                    parent.map_or_else(|| "\\N".to_owned(), |(id, _)| id),
                    path.clone(),
                    format!("{:032x}", rng.random::<u128>()),
                    "f".to_owned(),
                    copy_text(&doc.to_string()),
                    now.to_string(),
                    now.to_string(),
                    "1".to_owned(),
                    format!("{:032x}", rng.random::<u128>()),
                ];
                rows.push_str(&row.join("\t"));
                rows.push('\n');
                paths.push(path);
                accounts.push(SeededAccount { id, depth });
            }
        }
        copy_in(
            url,
            &["COPY accounts (id, name, parent_id, path, api_key, superduper_admin, doc, created, modified, \
               revision_number, revision_tag) FROM STDIN"],
            |out| out.write_all(rows.as_bytes()),
        );
        drop(rows);
        let hooks: Vec<(WebhookId, u32)> = (0..HOOKS)
            .map(|_| (random_id(&mut rng), rng.random_range(0..u32::try_from(accounts.len()).unwrap())))
            .collect();
        copy_in(
            url,
            &["COPY webhooks (id, account_id, hook, enabled, include_subaccounts, disabled_reason, doc, signed, \
               created, modified, revision_number, revision_tag) FROM STDIN"],
            |out| {
                for (position, (id, owner)) in hooks.iter().enumerate() {
                    let hook = HOOK_TYPES[position % HOOK_TYPES.len()];
                    let doc = hook_document(position, hook);
                    let include_subaccounts = position % 10 < 3;
                    // One hook in a hundred was auto-disabled.
                    let (enabled, reason) =
                        if position % 100 == 99 { ("f", "too many failures") } else { ("t", "\\N") };
                    writeln!(
                        out,
                        "{id}\t{}\t{hook}\t{enabled}\t{}\t{reason}\t{}\tf\t{now}\t{now}\t1\t{:032x}",
                        accounts[*owner as usize].id,
                        if include_subaccounts { "t" } else { "f" },
                        copy_text(&Value::Object(doc).to_string()),
                        position,
                    )?;
                }
                Ok(())
            },
        );
        analyze(url, &["accounts", "webhooks"]);
        Forest { accounts, hooks }
    }
}

/// A hook document as the API stores a validated one.
fn hook_document(position: usize, hook: &str) -> Map<String, Value> {
    let mut doc = json!({
        "name": format!("hook {position}"),
        "uri": format!("https://hooks.example.com/{position}/in"),
        "http_verb": "post",
        "hook": hook,
        "retries": 2,
        "format": "json",
        "enabled": true,
        "include_subaccounts": position % 10 < 3,
        "include_internal_legs": true,
    });
    if position.is_multiple_of(5) {
        doc["custom_data"] = json!({"environment": "production", "tenant": format!("t{position}")});
    }
    doc.as_object().cloned().unwrap()
}

/// The master account's id and path, when the database names one.
fn master_path(url: &str) -> Option<(String, String)> {
    #[derive(QueryableByName)]
    struct Master {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        path: String,
    }
    let mut connection = PgConnection::establish(url).unwrap();
    diesel::sql_query(
        "SELECT accounts.id, accounts.path FROM accounts JOIN settings ON settings.value = accounts.id \
         WHERE settings.key = 'master_account_id'",
    )
    .load::<Master>(&mut connection)
    .unwrap()
    .pop()
    .map(|master| (master.id, master.path))
}

/// A random id of Kazoo's shape.
fn random_id<T: std::str::FromStr<Err: std::fmt::Debug>>(rng: &mut StdRng) -> T {
    format!("{:032x}", rng.random::<u128>()).parse().unwrap()
}

/// `text` as a field of COPY's text format.
fn copy_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r")
}

/// Runs `statements` in one transaction with psql on `url`, the data of its `COPY ... FROM
/// STDIN` written by `write`.
fn copy_in(url: &str, statements: &[&str], write: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
    let mut command = Command::new("psql");
    command.args(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", url]);
    for statement in statements {
        command.args(["-c", statement]);
    }
    let mut child = command.stdin(Stdio::piped()).spawn().expect("psql");
    {
        let mut out = BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
        write(&mut out).expect("rows written to psql");
        out.flush().expect("rows written to psql");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "psql failed: {status}");
}

/// Runs SQL statements on `url`, one connection.
fn execute(url: &str, statements: &[String]) {
    let mut connection = PgConnection::establish(url).unwrap();
    for statement in statements {
        diesel::sql_query(statement).execute(&mut connection).unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
}

fn analyze(url: &str, tables: &[&str]) {
    execute(url, &[format!("ANALYZE {}", tables.join(", "))]);
}

/// The attempts table's size on disk, with its TOAST and indexes.
fn table_size(url: &str) -> String {
    #[derive(QueryableByName)]
    struct Size {
        #[diesel(sql_type = Text)]
        size: String,
    }
    let mut connection = PgConnection::establish(url).unwrap();
    let size = diesel::sql_query(
        "SELECT pg_size_pretty(pg_table_size('attempts')) || ' and ' || pg_size_pretty(pg_indexes_size('attempts')) \
         || ' of indexes' AS size",
    )
    .get_result::<Size>(&mut connection)
    .unwrap();
    size.size
}

/// An index or constraint of the attempts table, as the migrations made it.
#[derive(QueryableByName, Debug, PartialEq, Clone)]
struct IndexDefinition {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    definition: String,
    /// A primary key or unique constraint, made again as a constraint.
    #[diesel(sql_type = Bool)]
    constraint: bool,
}

/// The attempts table's indexes, each with the statement that makes it.
fn attempt_indexes(connection: &mut PgConnection) -> Vec<IndexDefinition> {
    diesel::sql_query(
        "SELECT i.indexname AS name, \
                COALESCE(pg_get_constraintdef(c.oid), i.indexdef) AS definition, \
                c.oid IS NOT NULL AS constraint \
         FROM pg_indexes i LEFT JOIN pg_constraint c \
           ON c.conname = i.indexname AND c.conrelid = 'attempts'::regclass \
         WHERE i.tablename = 'attempts' ORDER BY i.indexname",
    )
    .load(connection)
    .unwrap()
}

/// The seeding's phases.
struct SeedTimings {
    copy: Duration,
    indexes: Duration,
    analyze: Duration,
}

impl SeedTimings {
    fn total(&self) -> Duration {
        self.copy + self.indexes + self.analyze
    }
}

/// A record's text with the hook's, the account's and the event's ids left open.
struct Template {
    pieces: Vec<Piece>,
}

enum Piece {
    Text(String),
    Hook,
    Account,
    Event,
}

/// Ids that mark where a template's ids go; no sample payload contains them.
const HOOK_MARK: &str = "1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f";
const ACCOUNT_MARK: &str = "2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e";
const EVENT_MARK: &str = "3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d";

impl Template {
    /// Cuts `text` at the marks.
    fn new(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = text;
        loop {
            let next = [(HOOK_MARK, 0), (ACCOUNT_MARK, 1), (EVENT_MARK, 2)]
                .into_iter()
                .filter_map(|(mark, which)| rest.find(mark).map(|at| (at, which)))
                .min();
            let Some((at, which)) = next else { break };
            pieces.push(Piece::Text(rest[..at].to_owned()));
            pieces.push(match which {
                0 => Piece::Hook,
                1 => Piece::Account,
                _ => Piece::Event,
            });
            rest = &rest[at + HOOK_MARK.len()..];
        }
        pieces.push(Piece::Text(rest.to_owned()));
        Self { pieces }
    }

    fn write(&self, out: &mut dyn Write, hook: &str, account: &str, event: &str) -> io::Result<()> {
        for piece in &self.pieces {
            out.write_all(match piece {
                Piece::Text(text) => text.as_bytes(),
                Piece::Hook => hook.as_bytes(),
                Piece::Account => account.as_bytes(),
                Piece::Event => event.as_bytes(),
            })?;
        }
        Ok(())
    }
}

/// What failed callouts answered, in turn: mostly server errors, then timeouts, refused
/// connections and missing endpoints.
fn answers() -> Vec<(Answer, u64)> {
    let response = |status: u16, body: &str| Answer::Response {
        status,
        headers: vec![
            ("Server".into(), "nginx/1.24.0".into()),
            ("Content-Type".into(), "text/html".into()),
            ("Date".into(), "Mon, 07 Dec 2026 10:00:00 GMT".into()),
        ],
        body: body.to_owned(),
    };
    vec![
        (response(500, "<html><body><h1>500 Internal Server Error</h1></body></html>"), 38),
        (response(503, "<html><body><h1>503 Service Unavailable</h1></body></html>"), 12),
        (Answer::ClientError { class: OutcomeClass::Timeout, text: "timeout".into() }, 15_000),
        (Answer::ClientError { class: OutcomeClass::Connect, text: "failed_connect: econnrefused".into() }, 2),
        (response(404, "<html><body><h1>404 Not Found</h1></body></html>"), 25),
    ]
}

/// The record the dispatcher stores for a failed callout of a `hook_type` hook (its document
/// `hook_doc`) answered with `answer`: its public fields and its job.
fn failed_attempt(
    hook_type: HookType,
    hook_doc: &Map<String, Value>,
    hook: &WebhookId,
    account: &AccountId,
    event: &str,
    (answer, duration_ms): &(Answer, u64),
) -> NewAttempt {
    let view = HookView::of(hook_type, hook_doc);
    let delivery = test_delivery(&view, &Finishing::new("bench-cluster")).unwrap();
    let body = Value::Object(delivery.payload.clone()).to_string();
    let event = JobEvent {
        event_id: EventId::from(event),
        hook_event: delivery.hook_event.to_owned(),
        payload: delivery.payload.into(),
        published_at_ms: 1_796_637_600_000,
    };
    let job = job_for_document(event, hook.clone(), account.clone(), hook_doc);
    let headers = [
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("User-Agent".to_owned(), "kazoo-webhooks".to_owned()),
        ("X-Hook-ID".to_owned(), hook.to_string()),
        ("X-Account-ID".to_owned(), account.to_string()),
        ("X-Event-ID".to_owned(), job.event_id.as_str().to_owned()),
    ];
    let sent = SentRequest { headers: &headers, body: body.as_bytes() };
    let doc = attempt_document(&job, sent, answer, 2, *duration_ms);
    NewAttempt {
        id: format!("{:032x}", rand::random::<u128>()),
        account_id: account.clone(),
        hook_id: hook.clone(),
        created: gregorian_now(),
        doc,
        job: Some(job),
    }
}

/// The record templates: each hook type of [`HOOK_TYPES`] with a sample (sms and mms have none)
/// crossed with each answer; each a COPY line's fields after the id, account, hook and creation.
fn templates() -> Vec<Template> {
    let (hook, account): (WebhookId, AccountId) = (HOOK_MARK.parse().unwrap(), ACCOUNT_MARK.parse().unwrap());
    let mut templates = Vec::new();
    for (position, name) in HOOK_TYPES.iter().enumerate() {
        let hook_type = HookType::parse(name).unwrap();
        let doc = hook_document(position, name);
        for answer in answers() {
            let attempt = failed_attempt(hook_type, &doc, &hook, &account, EVENT_MARK, &answer);
            let job = serde_json::to_string(&attempt.job).unwrap();
            let line =
                format!("{}\t{}\t{EVENT_MARK}\n", copy_text(&Value::Object(attempt.doc).to_string()), copy_text(&job));
            templates.push(Template::new(&line));
        }
    }
    templates
}

/// Writes `count` attempt records created from `oldest` to now, in time order, over the hooks of
/// `forest` (skewed: the hook at a random position squared, so the first hooks fail most), with
/// the attempts' indexes dropped meanwhile and made again as they were.
fn seed_attempts(url: &str, forest: &Forest, count: usize, oldest: i64) -> SeedTimings {
    let mut connection = PgConnection::establish(url).unwrap();
    let indexes = attempt_indexes(&mut connection);
    let drops: Vec<String> = indexes
        .iter()
        .map(|index| {
            if index.constraint {
                format!("ALTER TABLE attempts DROP CONSTRAINT {}", index.name)
            } else {
                format!("DROP INDEX {}", index.name)
            }
        })
        .collect();
    execute(url, &drops);
    let templates = templates();
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let count_i64 = i64::try_from(count).unwrap();
    // Frozen as written (the table is truncated in the same transaction): what a long-lived
    // table's old rows are after vacuum, and no hint bits left to write on first read.
    copy_in(
        url,
        &[
            // Compressed with LZ4 rather than the server's default pglz: the load is bound by the
            // compression, which LZ4 does in a third less time; a setting operators may choose too.
            "SET LOCAL default_toast_compression = 'lz4'",
            "TRUNCATE attempts",
            "COPY attempts (id, account_id, hook_id, created, doc, job, event_id) FROM STDIN WITH (FREEZE)",
        ],
        |out| {
            for position in 0..count {
                let skewed = rng.random::<f64>().powi(2);
                let (hook, owner) = &forest.hooks[((skewed * HOOKS as f64) as usize).min(HOOKS - 1)];
                let account = &forest.accounts[*owner as usize].id;
                let created = oldest + i64::try_from(position).unwrap() * SPAN_SECONDS / count_i64;
                let template = &templates[rng.random_range(0..templates.len())];
                let event = format!("{:032x}", rng.random::<u128>());
                write!(out, "{:032x}\t{account}\t{hook}\t{created}\t", rng.random::<u128>())?;
                template.write(out, hook.as_str(), account.as_str(), &event)?;
            }
            Ok(())
        },
    );
    let copy = started.elapsed();
    let started = Instant::now();
    let makes: Vec<String> = indexes
        .iter()
        .map(|index| {
            if index.constraint {
                format!("ALTER TABLE attempts ADD CONSTRAINT {} {}", index.name, index.definition)
            } else {
                index.definition.clone()
            }
        })
        .collect();
    let mut statements = vec!["SET maintenance_work_mem = '1GB'".to_owned()];
    statements.extend(makes);
    execute(url, &statements);
    assert_eq!(attempt_indexes(&mut connection), indexes, "the attempts' indexes are not as the migrations made them");
    let indexes = started.elapsed();
    let started = Instant::now();
    analyze(url, &["attempts"]);
    SeedTimings { copy, indexes, analyze: started.elapsed() }
}

/// One run's figures; see [`METRICS`].
#[derive(Default)]
struct Figures {
    hook_p50: f64,
    hook_p99: f64,
    hook_rows: f64,
    account_p50: f64,
    account_p99: f64,
    reseller_descendants_p50: f64,
    reseller_descendants_p99: f64,
    reseller_hooks_p50: f64,
    reseller_hooks_p99: f64,
    root_descendants_p50: f64,
    root_hooks_p50: f64,
    prune_s: f64,
    pruned: f64,
    insert_before_p99: f64,
    insert_before_max: f64,
    insert_during_p50: f64,
    insert_during_p99: f64,
    insert_during_max: f64,
    inserted_during: f64,
}

/// Milliseconds `work` took.
async fn timed<T>(work: impl Future<Output = T>) -> (T, f64) {
    let started = Instant::now();
    let result = work.await;
    (result, started.elapsed().as_secs_f64() * 1e3)
}

async fn run_once(store: &Store, forest: &Arc<Forest>, rng: &mut StdRng, cutoff: i64) -> Figures {
    let mut figures = Figures::default();
    let now = gregorian_now();
    let newest_page = PageRequest { start_key: None, page_size: Some(PAGE_SIZE), ascending: false };
    let (mut hook_times, mut rows) = (Vec::new(), 0);
    for _ in 0..LISTINGS {
        let (hook, owner) = &forest.hooks[rng.random_range(0..forest.hooks.len())];
        let account = &forest.accounts[*owner as usize].id;
        let (page, elapsed) =
            timed(store.list_attempts(account, Some(hook), now - WINDOW_SECONDS, now, &newest_page)).await;
        rows += page.unwrap().items.len();
        hook_times.push(elapsed);
    }
    (figures.hook_p50, figures.hook_p99) = (percentile(&hook_times, 0.5), percentile(&hook_times, 0.99));
    figures.hook_rows = rows as f64 / LISTINGS as f64;
    let mut account_times = Vec::new();
    for _ in 0..LISTINGS {
        let account = &forest.accounts[rng.random_range(0..forest.accounts.len())].id;
        let (page, elapsed) = timed(store.list_attempts(account, None, now - WINDOW_SECONDS, now, &newest_page)).await;
        page.unwrap();
        account_times.push(elapsed);
    }
    (figures.account_p50, figures.account_p99) = (percentile(&account_times, 0.5), percentile(&account_times, 0.99));

    let (mut reseller_descendants, mut reseller_hooks, mut root_descendants, mut root_hooks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for account in forest.accounts.iter().filter(|account| account.depth <= 1) {
        let (descendants, elapsed) = timed(store.descendants(&account.id)).await;
        assert!(!descendants.unwrap().is_empty());
        let (_, hooks_elapsed) = timed(store.enabled_webhooks_of(&account.id, true)).await;
        if account.depth == 0 {
            root_descendants.push(elapsed);
            root_hooks.push(hooks_elapsed);
        } else {
            reseller_descendants.push(elapsed);
            reseller_hooks.push(hooks_elapsed);
        }
    }
    figures.reseller_descendants_p50 = percentile(&reseller_descendants, 0.5);
    figures.reseller_descendants_p99 = percentile(&reseller_descendants, 0.99);
    figures.reseller_hooks_p50 = percentile(&reseller_hooks, 0.5);
    figures.reseller_hooks_p99 = percentile(&reseller_hooks, 0.99);
    figures.root_descendants_p50 = percentile(&root_descendants, 0.5);
    figures.root_hooks_p50 = percentile(&root_hooks, 0.5);

    // The writer inserts until told to stop, recording when each batch started and how long it took.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_attempts(store.clone(), Arc::clone(forest), rng.random(), stopped));
    tokio::time::sleep(BASELINE).await;
    let prune_started = Instant::now();
    let pruned = store.prune_attempts(cutoff).await.unwrap();
    let prune_elapsed = prune_started.elapsed();
    stop.send(true).unwrap();
    let batches = writer.await.unwrap();
    figures.prune_s = prune_elapsed.as_secs_f64();
    figures.pruned = pruned as f64;
    let (before, during): (Vec<_>, Vec<_>) = batches.iter().partition(|(at, _)| *at < prune_started);
    let before: Vec<f64> = before.iter().map(|(_, latency)| *latency).collect();
    let during: Vec<f64> = during.iter().map(|(_, latency)| *latency).collect();
    figures.insert_before_p99 = percentile(&before, 0.99);
    figures.insert_before_max = before.iter().copied().fold(0.0, f64::max);
    figures.insert_during_p50 = percentile(&during, 0.5);
    figures.insert_during_p99 = percentile(&during, 0.99);
    figures.insert_during_max = during.iter().copied().fold(0.0, f64::max);
    figures.inserted_during = (during.len() * WRITE_BATCH) as f64;
    figures
}

/// Inserts [`WRITE_BATCH`] records every [`WRITE_EVERY`] until `stop`, as the dispatcher's
/// writer does; each batch's start and latency in milliseconds. A batch that takes longer than
/// the pace delays the next, as it would delay the dispatcher's writer.
async fn write_attempts(
    store: Store,
    forest: Arc<Forest>,
    seed: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(Instant, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let answers = answers();
    let mut ticks = tokio::time::interval(WRITE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batches = Vec::new();
    while !*stop.borrow() {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => break,
        }
        let batch: Vec<NewAttempt> = (0..WRITE_BATCH)
            .map(|_| {
                let position = rng.random_range(0..forest.hooks.len());
                let (hook, owner) = &forest.hooks[position];
                let name = HOOK_TYPES[position % HOOK_TYPES.len()];
                let event = format!("{:032x}", rng.random::<u128>());
                failed_attempt(
                    HookType::parse(name).unwrap(),
                    &hook_document(position, name),
                    hook,
                    &forest.accounts[*owner as usize].id,
                    &event,
                    &answers[position % answers.len()],
                )
            })
            .collect();
        let started = Instant::now();
        store.insert_attempts(&batch).await.unwrap();
        batches.push((started, started.elapsed().as_secs_f64() * 1e3));
    }
    batches
}

/// The machine's load average, as `uptime` shows it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Every figure, in the order printed.
const METRICS: &[Metric<Figures>] = &[
    Metric::new("attempt log", "one hook's newest page, p50", "ms", 2, Goal::None, |run| run.hook_p50),
    Metric::new("attempt log", "one hook's newest page, p99", "ms", 2, Goal::Below(20.0), |run| run.hook_p99),
    Metric::new("attempt log", "records on a hook's newest page, mean", "", 1, Goal::None, |run| run.hook_rows),
    Metric::new("attempt log", "one account's newest page, p50", "ms", 2, Goal::None, |run| run.account_p50),
    Metric::new("attempt log", "one account's newest page, p99", "ms", 2, Goal::Below(50.0), |run| run.account_p99),
    Metric::new("attempt log", "a reseller's descendants (about 250), p50", "ms", 2, Goal::None, |run| {
        run.reseller_descendants_p50
    }),
    Metric::new("attempt log", "a reseller's descendants, p99", "ms", 2, Goal::None, |run| {
        run.reseller_descendants_p99
    }),
    Metric::new(
        "attempt log",
        "a reseller's descendants' enabled hooks (about 2,500), p50",
        "ms",
        1,
        Goal::None,
        |run| run.reseller_hooks_p50,
    ),
    Metric::new("attempt log", "a reseller's descendants' enabled hooks, p99", "ms", 1, Goal::None, |run| {
        run.reseller_hooks_p99
    }),
    Metric::new("attempt log", "a root's descendants (999), p50", "ms", 1, Goal::None, |run| run.root_descendants_p50),
    Metric::new("attempt log", "a root's descendants' enabled hooks (about 10,000), p50", "ms", 1, Goal::None, |run| {
        run.root_hooks_p50
    }),
    Metric::new("attempt log", "prune of the oldest records", "s", 1, Goal::Below(60.0), |run| run.prune_s),
    Metric::new("attempt log", "records pruned", "", 0, Goal::None, |run| run.pruned),
    Metric::new("attempt log", "insert of 50 records before the prune, p99", "ms", 1, Goal::None, |run| {
        run.insert_before_p99
    }),
    Metric::new("attempt log", "insert of 50 records before the prune, max", "ms", 1, Goal::None, |run| {
        run.insert_before_max
    }),
    Metric::new("attempt log", "insert of 50 records during the prune, p50", "ms", 1, Goal::None, |run| {
        run.insert_during_p50
    }),
    Metric::new("attempt log", "insert of 50 records during the prune, p99", "ms", 1, Goal::None, |run| {
        run.insert_during_p99
    }),
    Metric::new("attempt log", "insert of 50 records during the prune, max", "ms", 1, Goal::None, |run| {
        run.insert_during_max
    }),
    Metric::new("attempt log", "records inserted during the prune", "", 0, Goal::None, |run| run.inserted_during),
];
