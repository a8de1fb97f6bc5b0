//! The system under test: its processes on PostgreSQL and RabbitMQ behind proxies (or on a
//! RabbitMQ cluster of the scenario's own), with the accounts and hooks of a scenario, crashed
//! and restarted at will.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::QueueDeleteOptions;
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use webhooks_bus::Topology;
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_test_support::bus::amqp_url;
use webhooks_test_support::db::TestDatabase;
use webhooks_test_support::proxy::via;
use webhooks_test_support::receiver::Receiver;
use webhooks_test_support::store::create_account;

use super::ledger::Ledger;
use super::{MASTER_KEY, POSTGRES, QUEUE_EXPIRY, RABBITMQ, mib};
use crate::process::{Memory, Webhooks, rabbitmq, run_to_end};

/// A service of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Router,
    Dispatcher,
}

impl Role {
    /// Its command.
    fn command(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Router => "router",
            Role::Dispatcher => "dispatcher",
        }
    }
}

/// What a scenario runs on.
pub struct Setup {
    /// The hook documents (`data` of the create request) of each account, by position; events
    /// go to the accounts in turn.
    pub hooks: Vec<Vec<Value>>,
    /// Where the services find PostgreSQL instead of the server itself (a proxy).
    pub database_via: Option<SocketAddr>,
    /// Where the services find RabbitMQ instead of the server itself (a proxy).
    pub broker_via: Option<SocketAddr>,
    /// How long the broker keeps the cluster's queues once unused; [`QUEUE_EXPIRY`] unless set.
    pub queue_expiry: Option<Duration>,
}

/// Brokers of a scenario's own for the services, instead of the machine's RabbitMQ (see
/// [`Cluster::start_on`]).
pub struct Brokers {
    /// The AMQP URL of each node of a cluster; the services try them in turn, from the first.
    pub urls: Vec<String>,
    /// Settings added to the services' environment (the bus's queue type, say).
    pub env: Vec<(&'static str, String)>,
}

/// A running process of the cluster.
struct Running {
    name: String,
    role: Role,
    process: Webhooks,
}

/// One `api`, `router` and `dispatcher` process on a database of their own, with accounts and
/// hooks created through the API.
pub struct Cluster {
    /// What the services run with.
    env: Vec<(&'static str, String)>,
    /// Their topology's prefix.
    prefix: String,
    /// A master token.
    pub token: String,
    /// The accounts.
    pub accounts: Vec<AccountId>,
    /// Each account's hook ids, by position.
    pub hooks: Vec<Vec<WebhookId>>,
    running: Vec<Running>,
    /// Processes killed, with their memory just before.
    gone: Vec<(String, Memory)>,
    /// Processes started so far, to name the next one.
    started: usize,
    /// Whether the services are on brokers of the scenario's own, thrown away with it.
    own_brokers: bool,
    /// Dropped last: the processes go first.
    _database: TestDatabase,
}

impl Cluster {
    /// Migrates a fresh database, creates the accounts, starts the API, creates the hooks
    /// through it, then starts a router and a dispatcher (which load the hooks at start) and
    /// waits until all three are ready.
    pub async fn start(setup: Setup) -> Cluster {
        Cluster::start_with(setup, None).await
    }

    /// As [`Cluster::start`], with the services on `brokers` (`setup.broker_via` is then not
    /// used). A separate constructor rather than a field of [`Setup`], so that the other
    /// scenarios' setups stay as they are.
    pub async fn start_on(setup: Setup, brokers: Brokers) -> Cluster {
        Cluster::start_with(setup, Some(brokers)).await
    }

    async fn start_with(setup: Setup, brokers: Option<Brokers>) -> Cluster {
        let database = TestDatabase::postgres().await;
        let database_url = match setup.database_via {
            Some(proxy) => via(database.url(), POSTGRES, proxy),
            None => database.url().to_owned(),
        };
        let mut env = vec![
            ("WEBHOOKS_DATABASE_URL", database_url),
            ("WEBHOOKS_MASTER_API_KEY", MASTER_KEY.to_owned()),
            ("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
            // Tests share the server: small pools.
            ("WEBHOOKS_DATABASE_POOL_SIZE", "3".to_owned()),
            // Failing hooks stay enabled however often they fail: the scenarios measure
            // deliveries, and a disabled hook would stop misbehaving.
            ("WEBHOOKS_DISPATCHER__FAILURE_THRESHOLD", "1000000".to_owned()),
        ];
        let prefix = format!("e2e-faults-{}", random_id());
        for (key, value) in rabbitmq(&prefix) {
            let value = match (key, setup.broker_via, &brokers) {
                ("WEBHOOKS_AMQP_URL", _, Some(brokers)) => brokers.urls.join(","),
                ("WEBHOOKS_AMQP_URL", Some(proxy), None) => via(&value, RABBITMQ, proxy),
                ("WEBHOOKS_BUS__QUEUE_EXPIRES_SECONDS", _, _) => {
                    setup.queue_expiry.unwrap_or(QUEUE_EXPIRY).as_secs().to_string()
                }
                _ => value,
            };
            env.push((key, value));
        }
        let own_brokers = brokers.is_some();
        env.extend(brokers.into_iter().flat_map(|brokers| brokers.env));
        assert!(run_to_end(&["migrate"], &env).await.success(), "migrations apply");
        let store = database.store().await;
        let mut accounts = Vec::new();
        for _ in &setup.hooks {
            let account = AccountId::generate();
            create_account(&store, &account, None, json!({})).await;
            accounts.push(account);
        }
        let mut cluster = Cluster {
            prefix,
            env,
            token: String::new(),
            accounts,
            hooks: Vec::new(),
            running: Vec::new(),
            gone: Vec::new(),
            started: 0,
            own_brokers,
            _database: database,
        };
        cluster.launch(Role::Api).await;
        cluster.token = cluster.process(Role::Api).client.token(MASTER_KEY).await;
        for (account, documents) in cluster.accounts.clone().iter().zip(&setup.hooks) {
            let mut ids = Vec::new();
            for document in documents {
                ids.push(cluster.api().create_hook(&cluster.token, account.as_str(), document).await);
            }
            cluster.hooks.push(ids);
        }
        cluster.launch(Role::Router).await;
        cluster.launch(Role::Dispatcher).await;
        cluster
    }

    /// Starts one more process of `role` and waits until it is ready.
    async fn launch(&mut self, role: Role) {
        let process = Webhooks::start(&[role.command()], &self.env).await;
        process.wait_ready().await;
        self.started += 1;
        let name = format!("{} #{}", role.command(), self.started);
        self.running.push(Running { name, role, process });
    }

    /// The prefix of the services' topology (their queues' names).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The (first) running process of `role`.
    pub fn process(&self, role: Role) -> &Webhooks {
        &self.running.iter().find(|running| running.role == role).expect("a process of that role").process
    }

    /// A client for the API.
    pub fn api(&self) -> &webhooks_test_support::http::Client {
        &self.process(Role::Api).client
    }

    /// Every running process with its name.
    pub fn processes(&self) -> impl Iterator<Item = (&str, &Webhooks)> {
        self.running.iter().map(|running| (running.name.as_str(), &running.process))
    }

    /// Kills the process of `role` with SIGKILL, starts a replacement and waits until it is
    /// ready.
    pub async fn crash_and_restart(&mut self, role: Role) -> Restart {
        let index = self.running.iter().position(|running| running.role == role).expect("a process of that role");
        let victim = self.running.remove(index);
        let memory = victim.process.memory();
        let killed_at = Instant::now();
        victim.process.kill().await;
        let killed = format!("{} (killed)", victim.name);
        self.gone.push((killed.clone(), memory));
        self.launch(role).await;
        Restart { killed, killed_at, ready_at: Instant::now() }
    }

    /// The peak memory of every process, running or gone, as one line.
    pub fn memory_report(&self) -> String {
        let running = self.running.iter().map(|running| (running.name.clone(), running.process.memory()));
        let every: Vec<String> = self
            .gone
            .iter()
            .cloned()
            .chain(running)
            .map(|(name, memory)| format!("{name} {:.1} MiB", mib(memory.peak_kib)))
            .collect();
        format!("peak RSS: {}", every.join(", "))
    }
}

/// A process killed and replaced.
pub struct Restart {
    /// The killed process's name.
    pub killed: String,
    pub killed_at: Instant,
    /// When its replacement was ready.
    pub ready_at: Instant,
}

/// The server address `server` (`host:port`).
pub fn server_address(server: &str) -> SocketAddr {
    server.parse().expect("a socket address")
}

/// A hook document: `name`, a `channel_create` hook posting JSON to `uri`, no retries unless
/// `extra` sets them, and whatever else `extra` holds.
/// One receiver answering 200 per position of `positions`, each recording into `ledger` at its
/// position, and the documents of the hooks calling them, named `<name> <position>`.
pub async fn recorded_hooks(ledger: &Arc<Ledger>, positions: &[usize], name: &str) -> (Vec<Receiver>, Vec<Value>) {
    let mut receivers = Vec::new();
    for &position in positions {
        receivers.push(Receiver::observing(200, ledger.observer(position)).await);
    }
    let hooks = receivers
        .iter()
        .zip(positions)
        .map(|(receiver, position)| hook_document(&format!("{name} {position}"), &receiver.url("/"), json!({})))
        .collect();
    (receivers, hooks)
}

pub fn hook_document(name: &str, uri: &str, extra: Value) -> Value {
    let mut document = json!({"name": name, "uri": uri, "hook": "channel_create", "http_verb": "post",
        "format": "json", "retries": 0});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        document[key] = value;
    }
    document
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Kazoo's exchanges are shared by every cluster on the broker: left behind, the router
        // queue of a finished scenario would take a copy of every later scenario's events until
        // it expires, and slow the broker down for them. Brokers of the scenario's own go with it.
        if self.own_brokers {
            return;
        }
        let queue = Topology::new(&self.prefix).router_queue();
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(delete_queue(&queue)));
    }
}

/// Deletes `queue` from the broker; a failure is only reported, as the queue expires anyway.
async fn delete_queue(queue: &str) {
    let deleted = async {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await?;
        connection.close(200, "done".into()).await
    };
    if let Err(error) = deleted.await {
        eprintln!("queue {queue} not deleted: {error}");
    }
}
