//! `make bench-import`: how fast `webhooks import` (the release binary) brings a Kazoo cluster's
//! hooks and attempt records over from CouchDB (a `pouchdb-server`) into PostgreSQL, and how much
//! memory it takes. Seeds 1,000 accounts, `WEBHOOKS_BENCH_HOOKS` hooks (default 100,000) and
//! `WEBHOOKS_BENCH_ATTEMPTS` attempt records of this month (default 1,000,000), then, `WEBHOOKS_BENCH_RUNS` times (default 3) on a fresh database, runs the
//! import twice: once without attempts (`--months 0`: accounts and hooks), once with (the hooks
//! then unchanged, the attempts new). Prints documents per second and the peak resident memory of
//! each run, then their medians and ranges.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../e2e/process.rs"]
#[allow(dead_code, reason = "the benchmark uses only part of the end-to-end helpers")]
mod process;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use webhooks_model::couch::monthly_dbs;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_model::time::unix_seconds;
use webhooks_test_support::bench::median;
use webhooks_test_support::couch::CouchStandIn;
use webhooks_test_support::db::TestDatabase;

const ACCOUNTS: usize = 1_000;
/// Documents written into CouchDB per request while seeding.
const SEED_BATCH: usize = 5_000;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (hooks, attempts) = (setting("WEBHOOKS_BENCH_HOOKS", 100_000), setting("WEBHOOKS_BENCH_ATTEMPTS", 1_000_000));
    let couch = CouchStandIn::start().await;
    let started = Instant::now();
    let accounts = seed(&couch, hooks, attempts).await;
    println!(
        "seeded {ACCOUNTS} accounts, {hooks} hooks, {attempts} attempts in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    drop(accounts);

    let runs = setting("WEBHOOKS_BENCH_RUNS", 3).max(1);
    let mut hooks_phase = Phase { what: "accounts and hooks", unit: "hooks", documents: hooks, ..Phase::default() };
    let mut attempts_phase =
        Phase { what: "attempts (hooks unchanged)", unit: "attempts", documents: attempts, ..Phase::default() };
    for run in 1..=runs {
        // A fresh database a run: every run imports everything.
        let database = TestDatabase::postgres().await;
        let env = [("WEBHOOKS_DATABASE_URL", database.url().to_owned())];
        hooks_phase.run(run, &["import", "--couch", couch.url(), "--months", "0"], &env).await;
        attempts_phase.run(run, &["import", "--couch", couch.url(), "--months", "1"], &env).await;
    }
    println!("hooks/s (goal 5,000): {}", spread(&mut hooks_phase.rates));
    println!("peak RSS importing hooks, MiB (goal 200): {}", spread(&mut hooks_phase.peaks));
    println!("attempts/s: {}", spread(&mut attempts_phase.rates));
    println!("peak RSS importing attempts, MiB (goal 200): {}", spread(&mut attempts_phase.peaks));
}

/// One kind of import, measured once a run.
#[derive(Default)]
struct Phase {
    what: &'static str,
    unit: &'static str,
    /// The documents each run imports.
    documents: usize,
    /// Documents per second, a run each.
    rates: Vec<f64>,
    /// Peak resident memory in MiB, a run each.
    peaks: Vec<f64>,
}

impl Phase {
    /// Runs `webhooks <args>` and prints and keeps its figures.
    async fn run(&mut self, run: usize, args: &[&str], env: &[(&str, String)]) {
        let (time, peak) = measure(args, env).await;
        let (rate, peak) = (self.documents as f64 / time.as_secs_f64(), peak as f64 / 1024.0);
        self.rates.push(rate);
        self.peaks.push(peak);
        println!(
            "run {run}: {} {:.1} s, {rate:.0} {}/s, peak RSS {peak:.0} MiB",
            self.what,
            time.as_secs_f64(),
            self.unit
        );
    }
}

/// The median and range of a few measurements.
fn spread(values: &mut [f64]) -> String {
    let median = median(values);
    format!("median {median:.0}, range {:.0}-{:.0}", values[0], values[values.len() - 1])
}

/// Seeds Kazoo's databases: a master and its accounts, the hooks spread over them, the attempt
/// records in each account's monthly database of this month.
async fn seed(couch: &CouchStandIn, hooks: usize, attempts: usize) -> Vec<AccountId> {
    let master = AccountId::generate();
    let accounts: Vec<AccountId> = (0..ACCOUNTS).map(|_| AccountId::generate()).collect();
    let mut docs = vec![json!({"_id": master.as_str(), "name": "master", "pvt_type": "account", "pvt_tree": [],
        "pvt_superduper_admin": true, "pvt_enabled": true})];
    docs.extend(accounts.iter().enumerate().map(|(n, id)| {
        json!({"_id": id.as_str(), "name": format!("account {n}"), "pvt_type": "account",
               "pvt_tree": [master.as_str()], "pvt_enabled": true, "realm": format!("a{n}.example.net")})
    }));
    couch.put_all("accounts", &docs).await;
    let hook = |n: usize| {
        json!({"_id": WebhookId::generate().as_str(), "pvt_type": "webhook", "pvt_account_id": accounts[n % ACCOUNTS].as_str(),
               "name": format!("hook {n}"), "uri": format!("https://hooks.example.com/{n}"), "hook": "channel_create",
               "http_verb": "post", "format": "json", "retries": 2, "enabled": true,
               "custom_data": {"crm": "zendesk"}, "pvt_created": 63_877_000_000_i64, "pvt_modified": 63_877_000_000_i64})
    };
    for start in (0..hooks).step_by(SEED_BATCH) {
        let docs: Vec<Value> = (start..hooks.min(start + SEED_BATCH)).map(hook).collect();
        couch.put_all("webhooks", &docs).await;
    }
    let per_account = attempts.div_ceil(ACCOUNTS);
    for account in &accounts {
        let db = monthly_dbs(account, unix_seconds(), 1).remove(0);
        let docs: Vec<Value> = (0..per_account)
            .map(|n| {
                json!({"_id": WebhookId::generate().as_str(), "pvt_type": "webhook_attempt",
                       "pvt_account_id": account.as_str(), "pvt_created": 63_877_000_000_i64 + n as i64,
                       "hook_id": WebhookId::generate().as_str(), "result": "success", "resp_status_code": "200",
                       "hook_event": "CHANNEL_CREATE", "method": "post", "uri": "https://hooks.example.com/x",
                       "req_body": "{\"call_id\":\"c\"}", "resp_body": "ok"})
            })
            .collect();
        for chunk in docs.chunks(SEED_BATCH) {
            couch.put_all(&db, chunk).await;
        }
    }
    accounts
}

/// Runs `webhooks <args>` to its end: how long it took, and its peak resident memory (KiB).
async fn measure(args: &[&str], env: &[(&str, String)]) -> (Duration, u64) {
    let mut command = tokio::process::Command::new(process::binary());
    command.args(args).env_clear().env("RUST_LOG", "warn").stdout(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("the binary runs");
    let pid = child.id().expect("a pid");
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            assert!(status.success(), "webhooks {} failed", args.join(" "));
            return (started.elapsed(), peak);
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let high = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok());
        peak = peak.max(high.unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
