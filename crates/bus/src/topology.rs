//! Every exchange, queue and binding the system uses, declared in this one place
//! (docs/kazoo.md#bus-topology).
//!
//! Both backends apply the same [`Declarations`]: the AMQP backend turns each spec into
//! `exchange.declare` / `queue.declare` / `queue.bind`, the in-process twin into its own tables.
//! A change here therefore changes production and the twin together.

use std::time::Duration;

use webhooks_model::config::{BusConfig, QueueType};
use webhooks_model::event::DEFAULT_OBJECT_TYPES;
use webhooks_model::ids::AccountId;
use webhooks_model::notice::{CONFIGURATION_EXCHANGE, Change, REENABLE_ROUTING_KEY};
use webhooks_model::notifications::{NOTIFICATION_TYPES, WEBHOOK_DISABLED};

/// Kazoo's exchanges that the router listens on, all of kind topic.
///
/// They are declared exactly as Kazoo declares them (non-durable, not auto-delete), because
/// RabbitMQ refuses a redeclaration with other attributes and would close our channel; declaring
/// them at all lets the system run (and be tested) without a Kazoo on the broker.
pub const KAZOO_EXCHANGES: [&str; 4] = ["callevt", CONFIGURATION_EXCHANGE, NOTIFICATIONS_EXCHANGE, "im"];

/// Kazoo's exchange of notifications: the router listens to it, and the dispatcher publishes
/// `webhook_disabled` on it.
pub const NOTIFICATIONS_EXCHANGE: &str = "notifications";

/// The routing key of `webhook_disabled`, published when a hook is auto-disabled
/// (docs/kazoo.md#auto-disable).
pub const WEBHOOK_DISABLED_ROUTING_KEY: &str = WEBHOOK_DISABLED.routing_key;

/// The routing key of the dispatch queue's binding on the jobs exchange.
pub const DISPATCH_ROUTING_KEY: &str = "dispatch";

/// Call events the router consumes (channel hooks and parking).
const CALL_EVENT_BINDINGS: [&str; 7] = [
    "call.CHANNEL_CREATE.*",
    "call.CHANNEL_ANSWER.*",
    "call.CHANNEL_BRIDGE.*",
    "call.CHANNEL_DESTROY.*",
    "call.PARK_PARKED.*",
    "call.PARK_RETRIEVED.*",
    "call.PARK_ABANDONED.*",
];

/// Account documents' changes in Kazoo's `<action>.<db>.<type>.<id>`: the `accounts` database's
/// copy only (each account's own database holds a twin whose notices would double every change).
const ACCOUNT_NOTICE_BINDING: &str = "*.accounts.account.*";

/// How long an event of an account the router does not know yet waits on
/// [`Topology::account_wait_exchange`] before it is routed again, in milliseconds: time for the
/// account sync to read the account from Crossbar and the router to hear of it.
pub const ACCOUNT_WAIT_MS: u64 = 1_000;

/// The first words of an account lookup's routing key ([`Topology::account_lookup_routing_key`]);
/// three words in all, so no binding of account notices (`*.accounts.account.*`) matches it.
const ACCOUNT_LOOKUP_PREFIX: &str = "lookup.account.";

/// Number documents' changes in Kazoo's `<action>.<db>.<type>.<id>` (the numbers database's copy and
/// the assignee's alike).
const NUMBER_NOTICE_BINDING: &str = "*.*.number.*";

/// Inbound messages the router consumes (sms and mms hooks).
const INSTANT_MESSAGE_BINDINGS: [&str; 2] = ["sms.inbound.offnet.*", "mms.inbound.offnet.*"];

/// Names and shapes of the system's bus objects. Cheap to clone; every service builds names
/// from the same value, so a test that picks a unique prefix gets a private set of queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Prefix of our own queue and exchange names (`webhooks` in production). Kazoo's exchanges
    /// are never prefixed.
    pub prefix: String,
    /// Document types whose changes the router receives for object hooks.
    pub object_types: Vec<String>,
    /// `x-expires` on our durable queues: a queue unused that long is deleted. Meant for tests,
    /// so their queues vanish; when set, our own exchanges are auto-delete for the same reason.
    pub queue_expires: Option<Duration>,
    /// The type of our durable queues. Private queues are always classic: a quorum queue can be
    /// neither exclusive nor transient.
    pub queue_type: QueueType,
    /// Kazoo mode: accounts are Kazoo's. Kazoo's account notices then go to
    /// [`Topology::kazoo_accounts_queue`] for the account sync, and replicas hear of the synced
    /// changes on [`Topology::accounts_exchange`], never on Kazoo's `configuration` exchange
    /// (Kazoo's services flush caches on account notices there, and `object` hooks would fire).
    pub accounts_from_kazoo: bool,
    /// Kazoo's CouchDB is known (`kazoo.couch_url`): hook writes are mirrored into it (the hook
    /// change notices also go to [`Topology::couch_mirror_queue`]), and routers find the account
    /// of a call by its number there (Kazoo's number notices reach the replicas' private queues).
    pub kazoo_couch: bool,
}

impl Topology {
    /// The production shape under `prefix`, with Kazoo's default object types.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            object_types: DEFAULT_OBJECT_TYPES.iter().map(|kind| (*kind).to_owned()).collect(),
            queue_expires: None,
            queue_type: BusConfig::default().queue_type,
            accounts_from_kazoo: false,
            kazoo_couch: false,
        }
    }

    /// `<prefix>.router`: the queue of Kazoo events, shared by every router replica (competing
    /// consumers, so each event is routed once). Durable; dead-letters to
    /// [`Topology::dead_letter_exchange`].
    pub fn router_queue(&self) -> String {
        format!("{}.router", self.prefix)
    }

    /// `<prefix>.jobs`: the durable direct exchange delivery jobs are published to.
    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// `<prefix>.dispatch`: the queue of delivery jobs, bound to [`Topology::jobs_exchange`]
    /// with [`DISPATCH_ROUTING_KEY`]. Durable; dead-letters to [`Topology::dead_letter_exchange`].
    pub fn dispatch_queue(&self) -> String {
        format!("{}.dispatch", self.prefix)
    }

    /// `<prefix>.accounts`: the durable topic exchange on which, in Kazoo mode, the account sync
    /// announces the account changes it stored, in Kazoo's document-change format.
    pub fn accounts_exchange(&self) -> String {
        format!("{}.accounts", self.prefix)
    }

    /// `<prefix>.kazoo_accounts`: in Kazoo mode, the queue of Kazoo's own account notices,
    /// shared by every API replica (competing consumers, so each notice is synced once). Durable,
    /// so notices wait while no replica runs (Kazoo's exchange itself keeps nothing).
    pub fn kazoo_accounts_queue(&self) -> String {
        format!("{}.kazoo_accounts", self.prefix)
    }

    /// `<prefix>.router.wait`: in Kazoo mode, the durable fanout exchange where the router puts
    /// an event of an account it does not know yet. Its queue of the same name keeps each event
    /// [`ACCOUNT_WAIT_MS`], then dead-letters it, with its own routing key, to
    /// [`Topology::account_waited_exchange`].
    pub fn account_wait_exchange(&self) -> String {
        format!("{}.router.wait", self.prefix)
    }

    /// `<prefix>.router.waited`: the durable fanout exchange that takes the events back from the
    /// wait to [`Topology::router_queue`].
    pub fn account_waited_exchange(&self) -> String {
        format!("{}.router.waited", self.prefix)
    }

    /// The routing key on [`Topology::accounts_exchange`] that asks the account sync to read
    /// account `id` from Crossbar and announce it (`lookup.account.{ID}`).
    pub fn account_lookup_routing_key(&self, id: &AccountId) -> String {
        format!("{ACCOUNT_LOOKUP_PREFIX}{id}")
    }

    /// The account an account lookup's `routing_key` names; `None` for any other routing key.
    pub fn account_lookup(&self, routing_key: &str) -> Option<AccountId> {
        routing_key.strip_prefix(ACCOUNT_LOOKUP_PREFIX)?.parse().ok()
    }

    /// `<prefix>.couch_mirror`: with [`Topology::kazoo_couch`], the queue of hook change notices
    /// the API replicas share to mirror hook writes into Kazoo's CouchDB (competing consumers, so
    /// each write is mirrored once). Durable, so writes wait while CouchDB or every replica is down.
    pub fn couch_mirror_queue(&self) -> String {
        format!("{}.couch_mirror", self.prefix)
    }

    /// The exchange on which the notice of `change` goes: an account change goes to
    /// [`Topology::accounts_exchange`] in Kazoo mode, every other notice to Kazoo's
    /// `configuration` exchange, as Kazoo publishes document changes.
    pub fn change_notice_exchange(&self, change: &Change) -> String {
        match change {
            Change::Account { .. } if self.accounts_from_kazoo => self.accounts_exchange(),
            _ => CONFIGURATION_EXCHANGE.to_owned(),
        }
    }

    /// The routing key that reaches [`Topology::dispatch_queue`] on the jobs exchange.
    pub fn dispatch_routing_key(&self) -> &'static str {
        DISPATCH_ROUTING_KEY
    }

    /// `<prefix>.dead_letter`: the durable fanout exchange that receives what the router and
    /// dispatch queues reject.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead_letter", self.prefix)
    }

    /// `<prefix>.dead_letter`: the durable queue behind the dead-letter exchange, for an operator
    /// to inspect (nothing consumes it).
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead_letter", self.prefix)
    }

    /// What the router queue is bound to: `(exchange, routing key)`.
    ///
    /// Object hooks only get changes of the document types hooks can name (not Kazoo's `#`), so
    /// the router is not flooded with every configuration change of the cluster.
    pub fn kazoo_event_bindings(&self) -> Vec<(&'static str, String)> {
        let calls = CALL_EVENT_BINDINGS.iter().map(|key| ("callevt", (*key).to_owned()));
        let documents = self.object_types.iter().flat_map(|kind| {
            ["doc_created", "doc_edited", "doc_deleted"]
                .into_iter()
                .map(move |action| (CONFIGURATION_EXCHANGE, format!("{action}.*.{kind}.*")))
        });
        let notifications = NOTIFICATION_TYPES.iter().map(|kind| (NOTIFICATIONS_EXCHANGE, kind.routing_key.to_owned()));
        let messages = INSTANT_MESSAGE_BINDINGS.iter().map(|key| ("im", (*key).to_owned()));
        calls.chain(documents).chain(notifications).chain(messages).collect()
    }

    /// What a replica's private change-notice queue is bound to: hook documents (`webhook` in
    /// the `webhooks` database) and account documents, in Kazoo's `<action>.<db>.<type>.<id>`,
    /// and Kazoo's bulk re-enable message.
    /// In Kazoo mode account notices are taken from [`Topology::accounts_exchange`] instead, so
    /// that a replica reads an account only once the sync has stored it.
    pub fn change_notice_bindings(&self) -> Vec<(String, String)> {
        let accounts =
            if self.accounts_from_kazoo { self.accounts_exchange() } else { CONFIGURATION_EXCHANGE.to_owned() };
        let mut bindings = hook_change_bindings();
        bindings.push((accounts, ACCOUNT_NOTICE_BINDING.to_owned()));
        if self.kazoo_couch {
            bindings.push((CONFIGURATION_EXCHANGE.to_owned(), NUMBER_NOTICE_BINDING.to_owned()));
        }
        bindings
    }

    /// Everything [`crate::Bus::connect`] declares, in dependency order.
    pub(crate) fn declarations(&self) -> Declarations {
        let expires = self.queue_expires;
        // Auto-delete only when queues expire (tests): a test's exchanges then vanish with its
        // queues. In production they must outlive every queue.
        let auto_delete = expires.is_some();
        let mut exchanges: Vec<ExchangeSpec> = KAZOO_EXCHANGES
            .iter()
            .map(|name| ExchangeSpec {
                name: (*name).to_owned(),
                kind: ExchangeKind::Topic,
                // As Kazoo declares them; see KAZOO_EXCHANGES.
                durable: false,
                auto_delete: false,
            })
            .collect();
        // Durable: jobs and dead letters survive a broker restart.
        exchanges.push(ExchangeSpec {
            name: self.dead_letter_exchange(),
            kind: ExchangeKind::Fanout,
            durable: true,
            auto_delete,
        });
        exchanges.push(ExchangeSpec {
            name: self.jobs_exchange(),
            kind: ExchangeKind::Direct,
            durable: true,
            auto_delete,
        });
        exchanges.push(ExchangeSpec {
            name: self.accounts_exchange(),
            kind: ExchangeKind::Topic,
            durable: true,
            auto_delete,
        });

        let dead_letters = Some(DeadLetter { exchange: self.dead_letter_exchange(), routing_key: None });
        let mut queues = vec![
            // Nothing consumes it and nothing dead-letters out of it: an operator looks.
            self.shared_queue(self.dead_letter_queue()),
            // Events are work: a router that cannot parse one dead-letters it rather than drop it.
            QueueSpec { dead_letter: dead_letters.clone(), ..self.shared_queue(self.router_queue()) },
            QueueSpec { dead_letter: dead_letters, ..self.shared_queue(self.dispatch_queue()) },
        ];

        let mut bindings = vec![
            BindingSpec {
                queue: self.dead_letter_queue(),
                exchange: self.dead_letter_exchange(),
                // Ignored by a fanout exchange.
                routing_key: String::new(),
            },
            BindingSpec {
                queue: self.dispatch_queue(),
                exchange: self.jobs_exchange(),
                routing_key: DISPATCH_ROUTING_KEY.to_owned(),
            },
        ];
        bindings.extend(self.kazoo_event_bindings().into_iter().map(|(exchange, routing_key)| BindingSpec {
            queue: self.router_queue(),
            exchange: exchange.to_owned(),
            routing_key,
        }));
        if self.accounts_from_kazoo {
            queues.push(self.shared_queue(self.kazoo_accounts_queue()));
            bindings.push(BindingSpec {
                queue: self.kazoo_accounts_queue(),
                exchange: CONFIGURATION_EXCHANGE.to_owned(),
                routing_key: ACCOUNT_NOTICE_BINDING.to_owned(),
            });
            bindings.push(BindingSpec {
                queue: self.kazoo_accounts_queue(),
                exchange: self.accounts_exchange(),
                routing_key: format!("{ACCOUNT_LOOKUP_PREFIX}*"),
            });
            self.declare_account_wait(&mut exchanges, &mut queues, &mut bindings);
        }
        if self.kazoo_couch {
            queues.push(self.shared_queue(self.couch_mirror_queue()));
            bindings.extend(hook_change_bindings().into_iter().map(|(exchange, routing_key)| BindingSpec {
                queue: self.couch_mirror_queue(),
                exchange,
                routing_key,
            }));
        }
        Declarations { exchanges, queues, bindings }
    }

    /// The wait of events of accounts the router does not know yet: wait exchange, wait queue
    /// (dead-lettering with the events' own routing keys), and the way back to the router queue.
    fn declare_account_wait(
        &self,
        exchanges: &mut Vec<ExchangeSpec>,
        queues: &mut Vec<QueueSpec>,
        bindings: &mut Vec<BindingSpec>,
    ) {
        let auto_delete = self.queue_expires.is_some();
        for name in [self.account_wait_exchange(), self.account_waited_exchange()] {
            exchanges.push(ExchangeSpec { name, kind: ExchangeKind::Fanout, durable: true, auto_delete });
        }
        queues.push(QueueSpec {
            message_ttl_ms: Some(ACCOUNT_WAIT_MS),
            dead_letter: Some(DeadLetter { exchange: self.account_waited_exchange(), routing_key: None }),
            ..self.shared_queue(self.account_wait_exchange())
        });
        // Ignored by fanout exchanges.
        bindings.push(BindingSpec {
            queue: self.account_wait_exchange(),
            exchange: self.account_wait_exchange(),
            routing_key: String::new(),
        });
        bindings.push(BindingSpec {
            queue: self.router_queue(),
            exchange: self.account_waited_exchange(),
            routing_key: String::new(),
        });
    }

    /// The declaration of `delay`.
    pub(crate) fn delay_queue(&self, delay: &DelayQueue) -> QueueSpec {
        QueueSpec {
            message_ttl_ms: Some(delay.ttl_ms),
            dead_letter: Some(DeadLetter {
                exchange: delay.target_exchange.clone(),
                routing_key: Some(delay.target_routing_key.clone()),
            }),
            ..self.shared_queue(delay.name.clone())
        }
    }

    /// A durable queue shared by every replica, of the configured type, without dead-lettering
    /// or TTL.
    fn shared_queue(&self, name: String) -> QueueSpec {
        QueueSpec {
            name,
            durable: true,
            // Shared by every replica.
            exclusive: false,
            // Work must wait for a consumer, not vanish with the last one.
            auto_delete: false,
            queue_type: self.queue_type,
            dead_letter: None,
            message_ttl_ms: None,
            expires: self.queue_expires,
        }
    }

    /// A queue only this replica reads (change notices every replica must see).
    pub(crate) fn private_queue(&self, name: String) -> QueueSpec {
        QueueSpec {
            name,
            // Its content is only useful to the replica that reads it.
            durable: false,
            // Deleted with the connection that declared it, so a crashed replica leaves nothing.
            exclusive: true,
            // And as soon as its consumer goes away.
            auto_delete: true,
            queue_type: QueueType::Classic,
            dead_letter: None,
            message_ttl_ms: None,
            expires: None,
        }
    }

    /// A fresh name for a private queue. Chosen by us rather than by the server so that the
    /// same queue (and its bindings) can be declared again after a reconnect.
    pub(crate) fn private_queue_name(&self) -> String {
        format!("{}.private.{}", self.prefix, uuid::Uuid::new_v4().simple())
    }
}

/// A durable queue whose messages wait `ttl_ms` (or their own shorter
/// [`crate::Outgoing::expiration_ms`]) and are then dead-lettered to `target_exchange` with
/// `target_routing_key`: the dispatcher's retry delay queues. Messages reach it through the
/// default exchange (`""`, routing key = queue name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayQueue {
    /// Queue name.
    pub name: String,
    /// How long a message waits at most, in milliseconds.
    pub ttl_ms: u64,
    /// Where it goes then.
    pub target_exchange: String,
    /// With this routing key.
    pub target_routing_key: String,
}

/// Where hook changes are announced: hook documents (`webhook` in the `webhooks` database) in
/// Kazoo's `<action>.<db>.<type>.<id>`, and Kazoo's bulk re-enable message.
fn hook_change_bindings() -> Vec<(String, String)> {
    vec![
        (CONFIGURATION_EXCHANGE.to_owned(), "*.webhooks.webhook.*".to_owned()),
        (CONFIGURATION_EXCHANGE.to_owned(), REENABLE_ROUTING_KEY.to_owned()),
    ]
}

/// The kinds of exchange the system uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExchangeKind {
    /// Routing-key patterns with `*` and `#` (Kazoo's exchanges).
    Topic,
    /// Exact routing key (jobs).
    Direct,
    /// Every bound queue (dead letters).
    Fanout,
}

/// One exchange declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExchangeSpec {
    /// Exchange name.
    pub(crate) name: String,
    /// How it routes.
    pub(crate) kind: ExchangeKind,
    /// Survives a broker restart.
    pub(crate) durable: bool,
    /// Deleted when its last binding goes.
    pub(crate) auto_delete: bool,
}

/// Where a queue sends what it rejects or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetter {
    /// `x-dead-letter-exchange`.
    pub(crate) exchange: String,
    /// `x-dead-letter-routing-key`; `None` keeps the message's own routing key.
    pub(crate) routing_key: Option<String>,
}

/// One queue declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueSpec {
    /// Queue name.
    pub(crate) name: String,
    /// Survives a broker restart (with persistent messages).
    pub(crate) durable: bool,
    /// Owned by the declaring connection and deleted with it.
    pub(crate) exclusive: bool,
    /// Deleted when its last consumer is cancelled.
    pub(crate) auto_delete: bool,
    /// `x-queue-type`.
    pub(crate) queue_type: QueueType,
    /// `x-dead-letter-exchange` / `x-dead-letter-routing-key`.
    pub(crate) dead_letter: Option<DeadLetter>,
    /// `x-message-ttl` in milliseconds.
    pub(crate) message_ttl_ms: Option<u64>,
    /// `x-expires`.
    pub(crate) expires: Option<Duration>,
}

/// One binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BindingSpec {
    /// The bound queue.
    pub(crate) queue: String,
    /// The source exchange.
    pub(crate) exchange: String,
    /// The binding key (a pattern on topic exchanges).
    pub(crate) routing_key: String,
}

/// The whole topology: exchanges first, then queues, then bindings.
#[derive(Debug, Clone)]
pub(crate) struct Declarations {
    /// Exchanges to declare.
    pub(crate) exchanges: Vec<ExchangeSpec>,
    /// Queues to declare.
    pub(crate) queues: Vec<QueueSpec>,
    /// Bindings to make.
    pub(crate) bindings: Vec<BindingSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_built_from_the_prefix() {
        let topology = Topology::new("t");
        assert_eq!(topology.router_queue(), "t.router");
        assert_eq!(topology.jobs_exchange(), "t.jobs");
        assert_eq!(topology.dispatch_queue(), "t.dispatch");
        assert_eq!(topology.dead_letter_exchange(), "t.dead_letter");
        assert_eq!(topology.dead_letter_queue(), "t.dead_letter");
    }

    #[test]
    fn the_router_queue_is_bound_to_every_hook_source() {
        let bindings = Topology::new("t").kazoo_event_bindings();
        let on = |exchange: &str| bindings.iter().filter(|(source, _)| *source == exchange).count();
        assert_eq!(on("callevt"), 7);
        assert_eq!(on("configuration"), 30, "three actions for each of the ten object types");
        assert_eq!(on("notifications"), 38, "every notification type");
        assert_eq!(on("im"), 2);
        assert!(bindings.contains(&("configuration", "doc_edited.*.vmbox.*".to_owned())));
        assert!(bindings.contains(&("notifications", "notifications.voicemail.new".to_owned())));
        assert!(bindings.iter().all(|(exchange, _)| KAZOO_EXCHANGES.contains(exchange)));
    }

    #[test]
    fn in_kazoo_mode_events_of_unknown_accounts_wait_and_lookups_reach_the_account_sync() {
        let topology = Topology { accounts_from_kazoo: true, ..Topology::new("t") };
        let declared = topology.declarations();
        let wait = declared.queues.iter().find(|queue| queue.name == "t.router.wait").expect("a wait queue");
        assert_eq!(wait.message_ttl_ms, Some(ACCOUNT_WAIT_MS));
        let back = DeadLetter { exchange: "t.router.waited".to_owned(), routing_key: None };
        assert_eq!(wait.dead_letter.as_ref(), Some(&back), "back with the event's own routing key");
        let bound = |queue: &str, exchange: &str| {
            declared.bindings.iter().any(|binding| binding.queue == queue && binding.exchange == exchange)
        };
        assert!(bound("t.router.wait", "t.router.wait") && bound("t.router", "t.router.waited"));
        assert!(bound("t.kazoo_accounts", "t.accounts"));

        let account: AccountId = "0123456789abcdef0123456789abcdef".parse().expect("an id");
        let key = topology.account_lookup_routing_key(&account);
        assert_eq!(key, "lookup.account.0123456789abcdef0123456789abcdef");
        assert_eq!(topology.account_lookup(&key), Some(account));
        assert_eq!(topology.account_lookup("doc_edited.accounts.account.0123456789abcdef0123456789abcdef"), None);
        assert!(!Topology::new("t").declarations().queues.iter().any(|queue| queue.name == "t.router.wait"));
    }

    #[test]
    fn the_couch_mirror_queue_takes_the_hook_changes_only_when_mirroring() {
        let mirroring = Topology { kazoo_couch: true, ..Topology::new("t") }.declarations();
        let bound: Vec<&str> = mirroring
            .bindings
            .iter()
            .filter(|binding| binding.queue == "t.couch_mirror")
            .map(|binding| binding.routing_key.as_str())
            .collect();
        assert_eq!(bound, ["*.webhooks.webhook.*", REENABLE_ROUTING_KEY]);
        assert!(mirroring.queues.iter().any(|queue| queue.name == "t.couch_mirror" && queue.durable));
        assert!(!Topology::new("t").declarations().queues.iter().any(|queue| queue.name == "t.couch_mirror"));
    }

    #[test]
    fn object_bindings_follow_the_configured_object_types() {
        let topology = Topology { object_types: vec!["device".to_owned()], ..Topology::new("t") };
        let documents: Vec<String> = topology
            .kazoo_event_bindings()
            .into_iter()
            .filter(|(exchange, _)| *exchange == "configuration")
            .map(|(_, key)| key)
            .collect();
        assert_eq!(documents, ["doc_created.*.device.*", "doc_edited.*.device.*", "doc_deleted.*.device.*"]);
    }

    #[test]
    fn work_queues_dead_letter_and_test_topologies_clean_up_after_themselves() {
        let mut topology = Topology::new("t");
        let production = topology.declarations();
        assert!(production.queues.iter().all(|queue| queue.expires.is_none() && queue.durable));
        assert!(production.queues.iter().all(|queue| queue.queue_type == QueueType::Classic), "the default type");
        topology.queue_type = QueueType::Quorum;
        assert!(topology.declarations().queues.iter().all(|queue| queue.queue_type == QueueType::Quorum));
        let private = topology.private_queue(topology.private_queue_name());
        assert_eq!(private.queue_type, QueueType::Classic, "exclusive and transient: never quorum");
        assert!(production.exchanges.iter().all(|exchange| !exchange.auto_delete));
        for queue in production.queues.iter().filter(|queue| queue.name != "t.dead_letter") {
            assert_eq!(queue.dead_letter.as_ref().map(|target| target.exchange.as_str()), Some("t.dead_letter"));
        }

        topology.queue_expires = Some(Duration::from_secs(60));
        let test = topology.declarations();
        assert!(test.queues.iter().all(|queue| queue.expires == Some(Duration::from_secs(60))));
        assert!(
            test.exchanges
                .iter()
                .filter(|exchange| exchange.name.starts_with("t."))
                .all(|exchange| exchange.auto_delete)
        );
        assert!(test.exchanges.iter().filter(|exchange| !exchange.name.starts_with("t.")).all(|e| !e.durable));
    }
}
