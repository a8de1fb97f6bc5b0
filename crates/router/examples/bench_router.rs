//! Router benchmark: `cargo run --release -p webhooks-router --example bench_router`.
//!
//! One file over the usual length: the phases are one program, read top to bottom in the order
//! they run.
//!
//! Phases, each bounded to a few seconds:
//! (a) in-process matching and full routing throughput on one core, 100,000 hooks over 10,000
//!     accounts in trees up to depth 4;
//! (b) the local RabbitMQ's ceiling: plain lapin publisher with confirms and a consumer with acks,
//!     persistent messages, one hop;
//! (c) the router end to end: Kazoo events published with a plain publisher, confirmed jobs
//!     consumed from the dispatch queue, and the ratio to (b);
//! (d) resident memory of the index for 100,000 hooks.
//!
//! `WEBHOOKS_TEST_AMQP_URL` names the broker (default `amqp://guest:guest@127.0.0.1:5672/%2f`);
//! `BENCH_SKIP_AMQP=1` runs only (a) and (d).
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly on setup errors")]

/// The allocator of the production binary, so memory figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use webhooks_model::event::KazooEvent;
use webhooks_model::ids::{AccountId, MessageKey, WebhookId};
use webhooks_model::time::unix_millis;
use webhooks_router::index::{HookIndex, HookIndexBuilder, Refresh};
use webhooks_router::route::{RouteContext, route_into};
use webhooks_storage::{Account, Webhook};

mod synthetic;
use synthetic::{CHANNEL_EVENTS, accounts, channel_body, random_hook_type, random_id, resident_bytes};

/// Accounts in the synthetic cluster.
const ACCOUNTS: usize = 10_000;
/// Hooks spread over them.
const HOOKS: usize = 100_000;
/// Roots (masters) among them, so trees are independent.
const ROOTS: usize = 10;
/// Deepest account below the root (root = depth 0).
const MAX_DEPTH: usize = 4;
/// Events per pass of the in-process phases, each of a random account.
const EVENTS: usize = 100_000;
/// Parsed event templates those events are made from.
const TEMPLATES: usize = 40;
/// Hooks per page read from the store (the router's reload page size).
const PAGE: usize = webhooks_router::RELOAD_PAGE_SIZE as usize;
/// How long each in-process phase runs.
const PHASE: Duration = Duration::from_secs(5);

fn main() {
    let mut rng = StdRng::seed_from_u64(7);
    let accounts = accounts(&mut rng, ACCOUNTS, ROOTS, MAX_DEPTH);
    let depth_histogram = accounts.iter().fold([0usize; MAX_DEPTH + 1], |mut histogram, account| {
        histogram[account.tree.len()] += 1;
        histogram
    });
    println!("cluster: {ACCOUNTS} accounts (by depth 0..=4: {depth_histogram:?}), {HOOKS} hooks");

    let memory = memory_phase(&accounts, &mut rng);
    let webhooks = webhooks(&accounts, HOOKS, &mut rng);
    let index = HookIndex::build(&accounts, &webhooks);
    drop(webhooks);
    let mut events = events(&accounts, &mut rng);
    matching_phase(&index, &mut events);

    if std::env::var("BENCH_SKIP_AMQP").is_ok_and(|value| value == "1") {
        println!("(b), (c) skipped (BENCH_SKIP_AMQP=1)");
    } else {
        amqp::run();
    }
    println!(
        "(d) memory: the index of {HOOKS} hooks holds {:.1} MB resident; during a reload {:.1} MB",
        memory.retained_mb, memory.peak_mb
    );
}

/// `count` enabled hooks on random accounts, with the fields real hooks carry.
fn webhooks(accounts: &[Account], count: usize, rng: &mut StdRng) -> Vec<Webhook> {
    (0..count)
        .map(|position| {
            let owner = &accounts[rng.random_range(0..accounts.len())];
            let hook_type = random_hook_type(rng);
            let include_subaccounts = rng.random_bool(0.3);
            let mut doc = json!({
                "name": format!("hook {position}"),
                "uri": format!("https://hooks.example.com/{position}"),
                "hook": hook_type,
                "http_verb": "post",
                "format": "json",
                "retries": 2,
                "enabled": true,
                "include_subaccounts": include_subaccounts,
                "include_internal_legs": rng.random_bool(0.8),
            });
            if let Some(fields) = doc.as_object_mut() {
                if hook_type == "object" {
                    fields.insert("custom_data".into(), json!({"type": "user", "action": "all"}));
                } else if rng.random_bool(0.2) {
                    fields.insert("custom_data".into(), json!({"environment": "production"}));
                }
                if rng.random_bool(0.05) {
                    fields.insert("modifiers".into(), json!({"call_direction": "inbound"}));
                }
                if rng.random_bool(0.05) {
                    fields.insert("custom_request_headers".into(), json!({"X-Tenant": format!("t{position}")}));
                }
            }
            Webhook {
                id: random_id(rng),
                account_id: owner.id.clone(),
                hook: hook_type.to_owned(),
                enabled: true,
                include_subaccounts,
                disabled_reason: None,
                doc: doc.as_object().cloned().unwrap_or_default(),
                signed: false,
                revision: "1-00000000000000000000000000000000".into(),
                created: 0,
                modified: 0,
            }
        })
        .collect()
}

/// The events of the in-process phases: a few parsed templates (nine in ten channel events of the
/// four kinds, one in ten document changes), and a long list of random accounts each template is
/// given in turn. The router matches an event right after parsing it, so the event itself is hot in
/// cache while the accounts and hooks it reaches are scattered: this reproduces both.
struct Events {
    templates: Vec<KazooEvent>,
    accounts: Vec<Option<AccountId>>,
}

fn events(accounts: &[Account], rng: &mut StdRng) -> Events {
    let templates = (0..TEMPLATES)
        .map(|sequence| {
            let account = &accounts[rng.random_range(0..accounts.len())].id;
            if sequence % 10 == 9 {
                let id = account.as_str();
                let database = format!("account%2F{}%2F{}%2F{}", &id[..2], &id[2..4], &id[4..]);
                let body = json!({"Event-Category": "configuration", "Event-Name": "doc_edited", "Type": "user",
                    "ID": "u1", "Database": database});
                KazooEvent::parse(&format!("doc_edited.{database}.user.u1"), &body).unwrap()
            } else {
                let name = CHANNEL_EVENTS[sequence % CHANNEL_EVENTS.len()];
                KazooEvent::parse(&format!("call.{name}.x"), &channel_body(account, name, sequence)).unwrap()
            }
        })
        .collect();
    let accounts = (0..EVENTS).map(|_| Some(accounts[rng.random_range(0..accounts.len())].id.clone())).collect();
    Events { templates, accounts }
}

impl Events {
    /// Calls `work` once per event: each template in turn, of the next account in the list.
    fn for_each(&mut self, mut work: impl FnMut(&KazooEvent)) -> u64 {
        let templates = self.templates.len();
        for (position, account) in self.accounts.iter_mut().enumerate() {
            let event = &mut self.templates[position % templates];
            std::mem::swap(&mut event.account_id, account);
            work(event);
            std::mem::swap(&mut event.account_id, account);
        }
        self.accounts.len() as u64
    }
}

/// (a): matching alone, then matching + payload + jobs, each on this thread for [`PHASE`].
fn matching_phase(index: &HookIndex, events: &mut Events) {
    // One untimed pass first: the index was just built, and the first reads of fresh memory
    // (page faults, huge-page collapsing) are not what a running router sees.
    let warm_up = Instant::now();
    while warm_up.elapsed() < Duration::from_secs(1) {
        events.for_each(|event| {
            index.for_each_match(event, |owner, hook| {
                black_box((owner, hook));
            })
        });
    }
    // Measured in one-second slices: on a shared machine a neighbour can take the core for a
    // while, so the median and the best slice are both reported.
    let (mut routed, mut matched) = (0u64, 0u64);
    let mut slices = Vec::new();
    let started = Instant::now();
    while started.elapsed() < PHASE {
        let slice = Instant::now();
        let mut slice_events = 0u64;
        while slice.elapsed() < Duration::from_secs(1) {
            slice_events += events.for_each(|event| {
                index.for_each_match(event, |owner, hook| {
                    black_box((owner, hook));
                    matched += 1;
                });
            });
        }
        routed += slice_events;
        slices.push(slice_events as f64 / slice.elapsed().as_secs_f64());
    }
    slices.sort_by(f64::total_cmp);
    let match_rate = slices[slices.len() / 2];
    let best_rate = slices[slices.len() - 1];
    let context = RouteContext::new("0d4c8e2a6b1f5a9c3e7d2b6f0a4c8e1d");
    // Reading the message (its key among it) is not part of this phase; each job's event id,
    // derived from the key and the hook, is.
    let key = MessageKey::of("call.CHANNEL_CREATE.x", b"{}");
    let started = Instant::now();
    let (mut full_routed, mut jobs_built) = (0u64, 0u64);
    let mut jobs = Vec::new();
    while started.elapsed() < PHASE {
        let now = unix_millis().unsigned_abs();
        full_routed += events.for_each(|event| {
            jobs_built += route_into(event, &key, index, &context, now, &mut jobs) as u64;
            jobs.clear();
        });
    }
    let route_rate = full_routed as f64 / started.elapsed().as_secs_f64();
    println!(
        "(a) matching: {:.0} events/s on one core (median of 1 s slices; best {:.0}; {:.2} hooks matched per event); full routing (matching + payload + job): {:.0} events/s ({:.0} jobs/s)",
        match_rate,
        best_rate,
        matched as f64 / routed as f64,
        route_rate,
        jobs_built as f64 / started.elapsed().as_secs_f64(),
    );
}

/// Memory figures in megabytes.
struct Memory {
    retained_mb: f64,
    peak_mb: f64,
}

/// (d): the index's resident size, loaded as the router loads it: pages of hooks from the store
/// added to a builder, so the figure is what the index keeps rather than the documents it was
/// built from. The peak is that of a reload, which reads the same hooks again a page at a time
/// and applies them to the index in place.
fn memory_phase(accounts: &[Account], rng: &mut StdRng) -> Memory {
    // The reload's pages are drawn again from the same generator state: the same hooks.
    let mut again = rng.clone();
    let before = resident_mb();
    let mut builder = HookIndexBuilder::new(accounts);
    for _ in 0..HOOKS / PAGE {
        builder.add_hooks(&webhooks(accounts, PAGE, rng));
    }
    let mut index = builder.finish();
    assert_eq!(index.hook_count(), HOOKS);
    let retained_mb = resident_mb() - before;
    let mut refresh = Refresh::default();
    index.refresh_accounts(&mut refresh, accounts);
    let mut peak_mb = resident_mb();
    for _ in 0..HOOKS / PAGE {
        index.refresh_hooks(&mut refresh, &webhooks(accounts, PAGE, &mut again));
        peak_mb = peak_mb.max(resident_mb());
    }
    index.finish_refresh(refresh);
    assert_eq!(index.hook_count(), HOOKS, "the reload read the same hooks");
    black_box(&index);
    Memory { retained_mb, peak_mb: peak_mb - before }
}

/// `VmRSS` of this process, in MiB.
fn resident_mb() -> f64 {
    resident_bytes() / (1024.0 * 1024.0)
}

mod amqp {
    //! Phases (b) and (c), against the broker.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use lapin::options::ConfirmSelectOptions;
    use lapin::{Connection, ConnectionProperties};
    use tokio_util::sync::CancellationToken;
    use webhooks_bus::Bus;
    use webhooks_model::event::call_event_routing_key;
    use webhooks_model::job::JobBatch;
    use webhooks_router::{Router, RouterSettings};

    use super::*;
    use webhooks_test_support::bench::{PREFETCH, consume_until, delete_queues, median, publish_confirmed};
    use webhooks_test_support::bus::{amqp_url, topology, unique_prefix};
    use webhooks_test_support::db::TestDatabase;
    use webhooks_test_support::store::{create_account, create_hook};

    /// Messages per AMQP phase: enough for a steady rate, few enough to stay within seconds.
    const MESSAGES: usize = 20_000;
    /// Rounds of (b) and (c), interleaved so that a busy neighbour on the machine weighs on both
    /// alike; the medians are reported.
    const ROUNDS: usize = 3;

    pub fn run() {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (mut ceilings, mut routers, mut packing) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                ceilings.push(broker_ceiling().await);
                let (events_per_second, jobs_per_message) = router_throughput().await;
                routers.push(events_per_second);
                packing.push(jobs_per_message);
            }
            let ceiling = median(&mut ceilings);
            let router = median(&mut routers);
            println!(
                "(b) RabbitMQ ceiling: {ceiling:.0} messages/s (median of {ROUNDS}: {ceilings:.0?}; plain lapin, persistent, publisher confirms, consumer acks, one hop, {MESSAGES} messages of a channel event)"
            );
            println!(
                "(c) router end to end: {router:.0} events/s from AMQP event to confirmed job (median of {ROUNDS}: {routers:.0?}), {:.0}% of (b); {:.1} jobs per dispatch message",
                100.0 * router / ceiling,
                median(&mut packing)
            );
        });
    }

    /// A channel event body as Kazoo publishes it, for a given account and call.
    fn event(account: &AccountId, sequence: usize) -> (String, Vec<u8>) {
        let body = channel_body(account, "CHANNEL_CREATE", sequence);
        let call_id = body["Call-ID"].as_str().unwrap().to_owned();
        (call_event_routing_key("CHANNEL_CREATE", &call_id), body.to_string().into_bytes())
    }

    /// (b): the broker's ceiling, measured on channel events like those of (c).
    async fn broker_ceiling() -> f64 {
        let account = AccountId::generate();
        let bodies = (0..MESSAGES).map(|sequence| event(&account, sequence).1).collect();
        webhooks_test_support::bench::broker_ceiling(&amqp_url(), bodies).await
    }

    /// (c): a router on its own topology and a SQLite store with one account and one hook; Kazoo
    /// events published by a plain publisher while the router runs, jobs consumed from the
    /// dispatch queue by a plain consumer.
    async fn router_throughput() -> (f64, f64) {
        let database = TestDatabase::sqlite().await;
        let store = database.store().await;
        let account = AccountId::generate();
        create_account(&store, &account, None, json!({})).await;
        let doc = json!({"name": "bench", "uri": "https://hooks.example.com/bench", "hook": "channel_create",
            "http_verb": "post", "format": "json", "retries": 2});
        create_hook(&store, &WebhookId::generate(), &account, &doc).await;

        // Not the tests' `connect`: that one sends logs to the test output.
        let bus = Bus::connect(Some(&amqp_url()), topology(&unique_prefix("bench"))).await.unwrap();
        let mut settings = RouterSettings::new("0d4c8e2a6b1f5a9c3e7d2b6f0a4c8e1d");
        settings.prefetch = PREFETCH;
        let router = Router::start(store.clone(), bus.clone(), settings).await.unwrap();
        let stats = router.stats();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(router.run(shutdown.clone()));

        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.unwrap();
        let publisher = connection.create_channel().await.unwrap();
        publisher.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let consumer = connection.create_channel().await.unwrap();
        let messages: Vec<(String, Vec<u8>)> = (0..MESSAGES).map(|sequence| event(&account, sequence)).collect();
        let jobs_seen = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let consuming = {
            let queue = bus.topology().dispatch_queue();
            let jobs_seen = Arc::clone(&jobs_seen);
            tokio::spawn(async move {
                consume_until(&consumer, &queue, MESSAGES, |body| {
                    let jobs = serde_json::from_slice::<JobBatch>(body).map_or(0, |batch| batch.jobs.len());
                    jobs_seen.fetch_add(jobs as u64, Ordering::Relaxed);
                    jobs
                })
                .await
            })
        };
        publish_confirmed(&publisher, "callevt", &messages).await;
        let dispatch_messages = consuming.await.unwrap();
        let rate = MESSAGES as f64 / started.elapsed().as_secs_f64();
        assert_eq!(jobs_seen.load(Ordering::Relaxed), MESSAGES as u64);
        shutdown.cancel();
        running.await.unwrap().unwrap();
        // Only once the router stopped: the consumer can see jobs before the router has counted
        // their confirms. Not `stats.events()`: Kazoo's exchanges are shared, so other clients'
        // events count there.
        assert!(stats.jobs() >= MESSAGES as u64);
        delete_queues(&publisher, bus.topology()).await;
        let _ = connection.close(200, "done".into()).await;
        // The store first: its connections hold the database file the database removes.
        drop(store);
        drop(database);
        (rate, MESSAGES as f64 / dispatch_messages as f64)
    }
}
