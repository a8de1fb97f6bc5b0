//! The router's hook index at scale: `cargo run --release -p webhooks-router --example bench_scale`.
//!
//! 1,000,000 hooks over 100,000 accounts in trees five deep (root = depth 0, deepest = depth 5),
//! measured against the goals of a large Kazoo cluster:
//! 1. resident memory: the process's RSS growth for the built index, and its peak during a full
//!    reload (goal under 500 MB each);
//! 2. full reload time (goal under 10 s), done as the router does it (`sync.rs`): a thread reads
//!    the store's accounts and hooks in pages ([`webhooks_router::RELOAD_PAGE_SIZE`]) and hands them
//!    over one ahead, while the routing thread matches batches of events and, between two, applies
//!    the next page to the index in place ([`Refresh`]), then routes for as long as the page took.
//!    One hook in a hundred has changed since the index was built, and one in a thousand is gone.
//!    How many events it matched during the reload and its longest pause (the longest step among
//!    them) show that routing goes on;
//! 3. matching rate on one core (goal at least 1,500,000 events/s), events of random accounts;
//! 4. change-notice apply latency, p50, p99 and max (goal p99 under 5 ms).
//!
//! The first load is the router's build path (`sync.rs`, `load_index`): a [`HookIndexBuilder`]
//! given every account, then the hooks page by page, then finished. The pages are generated in
//! memory and only the index's calls are timed: the store's read time is measured elsewhere
//! (tests/bench).
//!
//! Times are wall-clock, what routing waits for, with the CPU time of the thread beside them where
//! the machine may be shared; the matching rate on one core is per CPU second.
//!
//! `WEBHOOKS_BENCH_RUNS` runs (default 3), each in a process of its own on freshly generated
//! accounts and hooks; each run's figures are printed, then each figure's median and range with
//! its goal. Three runs take about two minutes.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly on setup errors")]

/// The allocator of the production binary, so memory figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::error::Error;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use webhooks_model::event::KazooEvent;
use webhooks_model::ids::{AccountId, WebhookId};
use webhooks_router::RouterSettings;
use webhooks_router::index::{HookIndex, HookIndexBuilder, Refresh};
use webhooks_storage::{Account, Webhook};
use webhooks_test_support::bench::{Goal, Metric, median, percentile};

mod synthetic;
use synthetic::{CHANNEL_EVENTS, accounts, channel_body, random_hook_type, random_id, resident_bytes};

/// Accounts in the synthetic cluster, roots included.
const ACCOUNTS: usize = 100_000;
/// Roots (masters) among them: independent trees of about a thousand accounts.
const ROOTS: usize = 100;
/// Deepest account below its root (root = depth 0).
const MAX_DEPTH: usize = 5;
/// Hooks spread over the accounts.
const HOOKS: usize = 1_000_000;
/// Hooks per page, as the router reads them from the store.
const PAGE: usize = webhooks_router::RELOAD_PAGE_SIZE as usize;
/// Random accounts events are given in turn: twice the accounts, so a pass is not cache-resident.
const EVENT_ACCOUNTS: usize = 200_000;
/// Parsed event templates those events are made from.
const TEMPLATES: usize = 40;
/// How long the matching rate is measured, in one-second slices.
const PHASE: Duration = Duration::from_secs(5);
/// At a reload, one hook in this many has changed since the index was built.
const CHANGED: usize = 100;
/// At a reload, one hook in this many was deleted since the index was built.
const GONE: usize = 1_000;
/// Change notices applied per run.
const NOTICES: usize = 20_000;

/// Set in the process of one run: each run is a process of its own, so that its memory figures
/// start from a fresh heap, not from one a previous run left.
const RUN_VARIABLE: &str = "WEBHOOKS_BENCH_SCALE_RUN";
/// Opens the line that carries a run's figures to the parent process.
const FIGURES_TAG: &str = "figures:";

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    match std::env::var(RUN_VARIABLE).ok().and_then(|run| run.parse().ok()) {
        Some(run) => {
            let figures = run_once(run);
            for section in METRICS.chunk_by(|left, right| left.section == right.section) {
                let shown: Vec<String> = section.iter().map(|metric| metric.show(&figures)).collect();
                println!("run {run} {}: {}", section[0].section, shown.join("; "));
            }
            let values: Vec<String> = METRICS.iter().map(|metric| (metric.value)(&figures).to_string()).collect();
            println!("{FIGURES_TAG} {}", values.join(" "));
            ExitCode::SUCCESS
        }
        None => run_all(),
    }
}

/// Runs each run in a process of its own, then prints each figure's median and range.
fn run_all() -> ExitCode {
    let runs = std::env::var("WEBHOOKS_BENCH_RUNS").ok().and_then(|runs| runs.parse().ok()).unwrap_or(3).max(1);
    println!(
        "{HOOKS} hooks over {ACCOUNTS} accounts in {ROOTS} trees up to depth {MAX_DEPTH}; {runs} runs; \
         reloads built in memory from pages of {PAGE} hooks (the store's read time is measured elsewhere)"
    );
    if thread_cpu_time().is_zero() {
        println!("no thread CPU clock: CPU times are wall-clock times");
    }
    let mut runs_figures = Vec::new();
    for run in 1..=runs {
        match run_process(run) {
            Ok(figures) => runs_figures.push(figures),
            Err(error) => {
                println!("run {run} failed: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("over {runs} runs (the verdict on the median):");
    for (position, metric) in METRICS.iter().enumerate() {
        if position == 0 || METRICS[position - 1].section != metric.section {
            println!("{}:", metric.section);
        }
        let mut values: Vec<f64> = runs_figures.iter().map(|figures| figures[position]).collect();
        println!("  {}", metric.summary(&mut values));
    }
    ExitCode::SUCCESS
}

/// Runs `run` in a child process, passing its report on; returns its figures, in [`METRICS`] order.
fn run_process(run: usize) -> Result<Vec<f64>, Box<dyn Error>> {
    let mut child =
        Command::new(std::env::current_exe()?).env(RUN_VARIABLE, run.to_string()).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().ok_or("the run's output is not piped")?;
    let mut figures = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match line.strip_prefix(FIGURES_TAG) {
            Some(values) => figures = Some(values.split_whitespace().map(str::parse).collect::<Result<Vec<f64>, _>>()?),
            None => println!("{line}"),
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the run's process ended with {status}").into());
    }
    Ok(figures.filter(|values| values.len() == METRICS.len()).ok_or("the run reported no figures")?)
}

/// As the production binary does (crates/webhooks/src/main.rs), so that where the kernel grants
/// huge pages by default the memory and build figures are still those of production.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        println!("cannot turn transparent huge pages off ({error}): memory figures may be larger");
    }
}

/// One run's figures; see [`METRICS`].
struct Figures {
    index_mb: f64,
    reload_peak_mb: f64,
    first_load_s: f64,
    reload_s: f64,
    reload_cpu_s: f64,
    events_during_reload: f64,
    rate_during_reload: f64,
    longest_pause_ms: f64,
    longest_step_ms: f64,
    last_step_ms: f64,
    match_rate: f64,
    match_rate_wall: f64,
    hooks_per_event: f64,
    apply_p50_ms: f64,
    apply_p99_ms: f64,
    apply_max_ms: f64,
}

/// One run on a cluster of its own: load, reload with routing alongside, matching, notices.
fn run_once(run: usize) -> Figures {
    // Events are matched in the router's batches: at most a prefetch's worth at once.
    let batch = usize::from(RouterSettings::new("bench").prefetch);
    let mut rng = StdRng::seed_from_u64(run as u64);
    let accounts = accounts(&mut rng, ACCOUNTS, ROOTS, MAX_DEPTH);
    let depths = accounts.iter().fold([0usize; MAX_DEPTH + 1], |mut depths, account| {
        depths[account.tree.len()] += 1;
        depths
    });
    println!("run {run}: accounts by depth 0..={MAX_DEPTH}: {depths:?}");
    let store = HookStore { accounts: &accounts, seed: rng.random() };
    // Made before the baseline is read, so that only the index counts.
    let mut events = Events::new(&accounts, &mut rng);
    let notices = notices(&store, &mut rng);

    let baseline_mb = resident_mb();
    let (mut index, first_load) = load(&store);
    assert_eq!(index.hook_count(), HOOKS);
    let index_mb = resident_mb() - baseline_mb;

    let reload = reload(&store, index, &mut events, batch);
    index = reload.index;
    assert_eq!(index.hook_count(), HOOKS - HOOKS.div_ceil(GONE));
    let matching = matching_rate(&index, &mut events, batch);
    let latencies = apply_notices(&mut index, &notices);
    Figures {
        index_mb,
        reload_peak_mb: reload.peak_mb - baseline_mb,
        first_load_s: first_load.wall.as_secs_f64(),
        reload_s: reload.elapsed.as_secs_f64(),
        reload_cpu_s: reload.steps.cpu.as_secs_f64(),
        events_during_reload: reload.events as f64,
        rate_during_reload: reload.events as f64 / reload.elapsed.as_secs_f64(),
        longest_pause_ms: reload.longest_pause.as_secs_f64() * 1e3,
        longest_step_ms: reload.longest_step.as_secs_f64() * 1e3,
        last_step_ms: reload.last_step.as_secs_f64() * 1e3,
        match_rate: matching.per_cpu_second,
        match_rate_wall: matching.per_second,
        hooks_per_event: matching.hooks_per_event,
        apply_p50_ms: percentile(&latencies, 0.50),
        apply_p99_ms: percentile(&latencies, 0.99),
        apply_max_ms: latencies.iter().copied().fold(0.0, f64::max),
    }
}

/// The fields of a JSON object literal.
fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// The stored hooks of a run, generated on demand rather than held: a hook is a function of its
/// position (and revision), so every load reads the same hooks and a change notice can name
/// one without the benchmark keeping a million documents around.
struct HookStore<'a> {
    accounts: &'a [Account],
    seed: u64,
}

impl HookStore<'_> {
    /// The hooks in pages, as a full load reads them; once `changed`, one hook in [`CHANGED`] is
    /// at its next revision and one in [`GONE`] was deleted.
    fn pages(&self, changed: bool) -> impl Iterator<Item = Vec<Webhook>> + '_ {
        let hook = move |at: usize| match at {
            _ if changed && at.is_multiple_of(GONE) => None,
            _ if changed && at % CHANGED == 1 => Some(self.hook(at, 1)),
            _ => Some(self.hook(at, 0)),
        };
        (0..HOOKS).step_by(PAGE).map(move |first| (first..HOOKS.min(first + PAGE)).filter_map(hook).collect())
    }

    /// What the id and owner of the hook at `position` are drawn from.
    fn identity(&self, position: usize) -> StdRng {
        // An odd multiplier keeps distinct positions distinct.
        StdRng::seed_from_u64(self.seed ^ (position as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn hook_id(&self, position: usize) -> WebhookId {
        random_id(&mut self.identity(position))
    }

    /// The hook at `position` as `revision` left it: id and owner never change, an update redraws
    /// the rest. An enabled hook with the fields real hooks carry.
    fn hook(&self, position: usize, revision: u64) -> Webhook {
        let mut identity = self.identity(position);
        let id = random_id(&mut identity);
        let owner = &self.accounts[identity.random_range(0..self.accounts.len())];
        let rng = &mut StdRng::seed_from_u64(identity.random::<u64>() ^ revision);
        let hook_type = random_hook_type(rng);
        let include_subaccounts = rng.random_bool(0.3);
        let mut doc = object(json!({
            "name": format!("hook {position}"),
            "uri": format!("https://hooks.example.com/{position}/{revision}"),
            "hook": hook_type,
            "http_verb": "post",
            "format": "json",
            "retries": 2,
            "enabled": true,
            "include_subaccounts": include_subaccounts,
            "include_internal_legs": rng.random_bool(0.8),
        }));
        if hook_type == "object" {
            doc.insert("custom_data".into(), json!({"type": "user", "action": "all"}));
        } else if rng.random_bool(0.2) {
            doc.insert("custom_data".into(), json!({"environment": "production"}));
        }
        if rng.random_bool(0.05) {
            doc.insert("modifiers".into(), json!({"call_direction": "inbound"}));
        }
        if rng.random_bool(0.05) {
            doc.insert("custom_request_headers".into(), json!({"X-Tenant": format!("t{position}")}));
        }
        Webhook {
            id,
            account_id: owner.id.clone(),
            hook: hook_type.to_owned(),
            enabled: true,
            include_subaccounts,
            disabled_reason: None,
            doc,
            signed: false,
            revision: format!("{}-00000000000000000000000000000000", revision + 1),
            created: 0,
            modified: 0,
        }
    }
}

/// The CPU time of this thread, zero where it cannot be read. The machine may be shared: what a
/// thread does is measured by its own CPU time, what routing waits for by the wall clock.
fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

/// Wall-clock and CPU time of this thread, summed over the work measured.
#[derive(Default, Clone, Copy)]
struct Elapsed {
    wall: Duration,
    cpu: Duration,
}

impl Elapsed {
    /// Runs `work`, adding its times.
    fn add<T>(&mut self, work: impl FnOnce() -> T) -> T {
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        let result = work();
        self.wall += wall.elapsed();
        self.cpu += thread_cpu_time().saturating_sub(cpu);
        result
    }

    /// The CPU time, or the wall-clock time where it cannot be read.
    fn cpu_or_wall(&self) -> Duration {
        if self.cpu.is_zero() { self.wall } else { self.cpu }
    }
}

/// A full load as the router's (`sync.rs`, `load_index`), from pages generated in memory; only the
/// builder's calls are timed.
fn load(store: &HookStore<'_>) -> (HookIndex, Elapsed) {
    let mut building = Elapsed::default();
    let mut builder = building.add(|| HookIndexBuilder::new(store.accounts));
    for page in store.pages(false) {
        building.add(|| builder.add_hooks(&page));
    }
    (building.add(|| builder.finish()), building)
}

/// A reload's step, as the router's reload task hands it over.
enum Step<'a> {
    Accounts(&'a [Account]),
    Hooks(Vec<Webhook>),
    Done,
}

/// A reload's figures, and the index it left.
struct Reload {
    index: HookIndex,
    /// From the start to the last step.
    elapsed: Duration,
    /// The steps' time on the routing thread.
    steps: Elapsed,
    longest_step: Duration,
    /// Forgetting what the store no longer holds.
    last_step: Duration,
    /// The largest RSS seen, sampled after each step.
    peak_mb: f64,
    /// Events matched during the reload.
    events: u64,
    /// The longest time between the ends of two batches, steps included.
    longest_pause: Duration,
}

/// Reloads the index in place as the router does: a thread reads the pages and hands them over
/// one ahead, the routing thread applies each between two batches of events and then routes for
/// as long as the step took (sync.rs, `on_reload_step`).
fn reload(store: &HookStore<'_>, index: HookIndex, events: &mut Events, batch: usize) -> Reload {
    let (sender, steps) = mpsc::sync_channel(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let steps = store.accounts.chunks(PAGE).map(Step::Accounts).chain(store.pages(true).map(Step::Hooks));
            for step in steps.chain([Step::Done]) {
                sender.send(step).unwrap();
            }
        });
        route_while_reloading(index, events, &steps, batch)
    })
}

/// The router's task during a reload: batches of events, and between two the next step once the
/// rest after the last one is over.
fn route_while_reloading(
    mut index: HookIndex,
    events: &mut Events,
    steps: &Receiver<Step<'_>>,
    batch: usize,
) -> Reload {
    let started = Instant::now();
    let mut refresh = Refresh::default();
    let (mut timed, mut longest_step, mut peak_mb) = (Elapsed::default(), Duration::ZERO, resident_mb());
    let (mut routed, mut longest_pause, mut last, mut rest_until) = (0, Duration::ZERO, started, started);
    loop {
        let step = if Instant::now() < rest_until {
            None
        } else {
            match steps.try_recv() {
                Ok(step) => Some(step),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => panic!("the reload ended without its last step"),
            }
        };
        if let Some(step) = step {
            let step_started = Instant::now();
            let done = timed.add(|| match step {
                Step::Accounts(accounts) => {
                    index.refresh_accounts(&mut refresh, accounts);
                    false
                }
                Step::Hooks(page) => {
                    index.refresh_hooks(&mut refresh, &page);
                    false
                }
                Step::Done => {
                    index.finish_refresh(std::mem::take(&mut refresh));
                    true
                }
            });
            let took = step_started.elapsed();
            longest_step = longest_step.max(took);
            peak_mb = peak_mb.max(resident_mb());
            rest_until = Instant::now() + took;
            if done {
                let now = Instant::now();
                return Reload {
                    index,
                    elapsed: started.elapsed(),
                    steps: timed,
                    longest_step,
                    last_step: took,
                    peak_mb,
                    events: routed,
                    longest_pause: longest_pause.max(now - last),
                };
            }
        }
        routed += match_batch(&index, events, batch).0;
        let now = Instant::now();
        longest_pause = longest_pause.max(now - last);
        last = now;
    }
}

/// Matching figures.
struct Matching {
    per_cpu_second: f64,
    per_second: f64,
    hooks_per_event: f64,
}

/// The matching rate on this thread, per CPU second (one core, whatever else the machine runs) and
/// per second, each the median of one-second slices; and the hooks matched per event.
fn matching_rate(index: &HookIndex, events: &mut Events, batch: usize) -> Matching {
    // One untimed second first: the first reads of a freshly built index (page faults) are not
    // what a running router sees.
    let warm_up = Instant::now();
    while warm_up.elapsed() < Duration::from_secs(1) {
        match_batch(index, events, batch);
    }
    let (mut routed, mut matched) = (0, 0);
    let (mut per_cpu_second, mut per_second) = (Vec::new(), Vec::new());
    let started = Instant::now();
    while started.elapsed() < PHASE {
        let mut slice = Elapsed::default();
        let mut slice_events = 0;
        while slice.wall < Duration::from_secs(1) {
            let (events, matches) = slice.add(|| match_batch(index, events, batch));
            slice_events += events;
            matched += matches;
        }
        routed += slice_events;
        per_cpu_second.push(slice_events as f64 / slice.cpu_or_wall().as_secs_f64());
        per_second.push(slice_events as f64 / slice.wall.as_secs_f64());
    }
    Matching {
        per_cpu_second: median(&mut per_cpu_second),
        per_second: median(&mut per_second),
        hooks_per_event: matched as f64 / routed as f64,
    }
}

/// Matches the next `batch` events against `index`; returns how many events and matches.
fn match_batch(index: &HookIndex, events: &mut Events, batch: usize) -> (u64, u64) {
    let mut matches = 0;
    let routed = events.next_batch(batch, |event| {
        index.for_each_match(event, |owner, hook| {
            black_box((owner, hook));
            matches += 1;
        });
    });
    (routed, matches)
}

/// The events matched: a few parsed templates (nine in ten channel events of the four kinds, one
/// in ten document changes), each given in turn the next of a long list of random accounts. The
/// router matches an event right after parsing it, so the event itself is hot in cache while the
/// accounts and hooks it reaches are scattered: this reproduces both.
struct Events {
    templates: Vec<KazooEvent>,
    accounts: Vec<Option<AccountId>>,
    /// The next account of the list.
    next: usize,
}

impl Events {
    fn new(accounts: &[Account], rng: &mut StdRng) -> Self {
        let mut random_account = || accounts[rng.random_range(0..accounts.len())].id.clone();
        let templates = (0..TEMPLATES)
            .map(|sequence| {
                let account = random_account();
                if sequence % 10 == 9 {
                    let id = account.as_str();
                    let database = format!("account%2F{}%2F{}%2F{}", &id[..2], &id[2..4], &id[4..]);
                    let body = json!({"Event-Category": "configuration", "Event-Name": "doc_edited",
                        "Type": "user", "ID": "u1", "Database": database});
                    KazooEvent::parse(&format!("doc_edited.{database}.user.u1"), &body).unwrap()
                } else {
                    let name = CHANNEL_EVENTS[sequence % CHANNEL_EVENTS.len()];
                    KazooEvent::parse(&format!("call.{name}.x"), &channel_body(&account, name, sequence)).unwrap()
                }
            })
            .collect();
        let accounts = (0..EVENT_ACCOUNTS).map(|_| Some(random_account())).collect();
        Self { templates, accounts, next: 0 }
    }

    /// Calls `work` on each of the next `count` events; returns `count`.
    fn next_batch(&mut self, count: usize, mut work: impl FnMut(&KazooEvent)) -> u64 {
        let templates = self.templates.len();
        for _ in 0..count {
            let at = self.next;
            self.next = (at + 1) % self.accounts.len();
            let event = &mut self.templates[at % templates];
            std::mem::swap(&mut event.account_id, &mut self.accounts[at]);
            work(event);
            std::mem::swap(&mut event.account_id, &mut self.accounts[at]);
        }
        count as u64
    }
}

/// A change notice as the router applies it, carrying the document the store returns for it (the
/// store's read is not measured here).
enum Notice {
    Hook(Webhook),
    HookDeleted(WebhookId),
    Account(Account),
}

/// The notices of a run: four in ten hook updates, two new hooks, one hook disabled, one deleted,
/// two account updates (of the reseller flag).
fn notices(store: &HookStore<'_>, rng: &mut StdRng) -> Vec<Notice> {
    (0..NOTICES)
        .map(|sequence| {
            let existing = rng.random_range(0..HOOKS);
            match rng.random_range(0..10) {
                0..4 => Notice::Hook(store.hook(existing, 1 + sequence as u64)),
                4..6 => Notice::Hook(store.hook(HOOKS + sequence, 0)),
                6 => {
                    let mut disabled = store.hook(existing, 0);
                    disabled.enabled = false;
                    Notice::Hook(disabled)
                }
                7 => Notice::HookDeleted(store.hook_id(existing)),
                _ => {
                    let mut account = store.accounts[rng.random_range(0..store.accounts.len())].clone();
                    let reseller = account.doc.get("is_reseller").and_then(Value::as_bool).unwrap_or(false);
                    account.doc.insert("is_reseller".into(), Value::Bool(!reseller));
                    Notice::Account(account)
                }
            }
        })
        .collect()
}

/// Applies each notice to the live index as sync.rs (`IndexSync::apply`) does once the store
/// returned the changed document: in place and without a lock, since the router's one task owns
/// the index (service.rs). Not included: the store's read, and the wait for the batch in
/// progress. Returns each one's time in milliseconds.
fn apply_notices(index: &mut HookIndex, notices: &[Notice]) -> Vec<f64> {
    notices
        .iter()
        .map(|notice| {
            let started = Instant::now();
            match notice {
                Notice::Hook(webhook) => index.upsert_hook(webhook),
                Notice::HookDeleted(id) => {
                    index.remove_hook(id);
                }
                Notice::Account(account) => index.upsert_account(account),
            }
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

/// `VmRSS` of this process, in MB (10^6 bytes, as the goal is written).
fn resident_mb() -> f64 {
    resident_bytes() / 1e6
}

/// Every figure, in the order printed.
const METRICS: &[Metric<Figures>] = &[
    Metric::new("memory", "index resident", "MB", 0, Goal::Below(500.0), |run| run.index_mb),
    Metric::new("memory", "peak during a reload", "MB", 0, Goal::Below(500.0), |run| run.reload_peak_mb),
    Metric::new("reload", "first load build (nothing alongside)", "s", 2, Goal::None, |run| run.first_load_s),
    Metric::new("reload", "full reload (routing alongside)", "s", 2, Goal::Below(10.0), |run| run.reload_s),
    Metric::new("reload", "full reload, CPU time of its steps", "s", 2, Goal::None, |run| run.reload_cpu_s),
    Metric::new("reload", "events matched during the reload", "events", 0, Goal::AtLeast(1.0), |run| {
        run.events_during_reload
    }),
    Metric::new("reload", "matching rate during the reload", "events/s", 0, Goal::None, |run| run.rate_during_reload),
    Metric::new("reload", "longest routing pause during the reload", "ms", 1, Goal::None, |run| run.longest_pause_ms),
    Metric::new("reload", "longest step", "ms", 1, Goal::None, |run| run.longest_step_ms),
    Metric::new("reload", "last step (forgetting deleted hooks)", "ms", 1, Goal::None, |run| run.last_step_ms),
    Metric::new("matching", "rate on one core (per CPU second)", "events/s", 0, Goal::AtLeast(1_500_000.0), |run| {
        run.match_rate
    }),
    Metric::new("matching", "rate, wall clock", "events/s", 0, Goal::None, |run| run.match_rate_wall),
    Metric::new("matching", "hooks matched per event", "", 2, Goal::None, |run| run.hooks_per_event),
    Metric::new("notices", "apply p50", "ms", 4, Goal::None, |run| run.apply_p50_ms),
    Metric::new("notices", "apply p99", "ms", 4, Goal::Below(5.0), |run| run.apply_p99_ms),
    Metric::new("notices", "apply max", "ms", 3, Goal::None, |run| run.apply_max_ms),
];
