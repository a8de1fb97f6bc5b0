//! What the router benchmarks generate alike: account trees, a realistic mix of hook types,
//! Kazoo-shaped channel events, and the process's resident memory.

use std::fmt::Debug;
use std::str::FromStr;

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use webhooks_model::ids::AccountId;
use webhooks_storage::Account;

/// A random id of Kazoo's shape, drawn from `rng` so that a run can draw the same one again.
pub fn random_id<T: FromStr<Err: Debug>>(rng: &mut StdRng) -> T {
    format!("{:032x}", rng.random::<u128>()).parse().expect("32 hex digits are an id")
}

/// `count` accounts in random trees: the first `roots` are roots (masters, so trees are
/// independent); each other hangs under an earlier one not yet at `max_depth`, so trees reach
/// that depth and every depth is populated. Half the accounts right under a root are resellers.
pub fn accounts(rng: &mut StdRng, count: usize, roots: usize, max_depth: usize) -> Vec<Account> {
    let mut accounts: Vec<Account> = Vec::with_capacity(count);
    for position in 0..count {
        let tree = if position < roots {
            Vec::new()
        } else {
            loop {
                let parent = &accounts[rng.random_range(0..position)];
                if parent.tree.len() < max_depth {
                    let mut tree = parent.tree.clone();
                    tree.push(parent.id.clone());
                    break tree;
                }
            }
        };
        let reseller = tree.len() == 1 && rng.random_bool(0.5);
        accounts.push(Account {
            id: random_id(rng),
            name: format!("account {position}"),
            parent_id: tree.last().cloned(),
            tree,
            api_key: String::new(),
            superduper_admin: false,
            doc: json!({"is_reseller": reseller}).as_object().cloned().unwrap_or_default(),
            created: 0,
            modified: 0,
            revision: "1-00000000000000000000000000000000".into(),
        });
    }
    accounts
}

/// Hook types with a weight: channel hooks dominate real installations.
const HOOK_TYPES: &[(&str, u32)] = &[
    ("channel_create", 20),
    ("channel_answer", 15),
    ("channel_bridge", 10),
    ("channel_destroy", 20),
    ("object", 10),
    ("notifications", 10),
    ("parking", 5),
    ("sms", 3),
    ("mms", 2),
    ("all", 5),
];

/// A hook type drawn with [`HOOK_TYPES`]' weights.
pub fn random_hook_type(rng: &mut StdRng) -> &'static str {
    let total: u32 = HOOK_TYPES.iter().map(|(_, weight)| weight).sum();
    let mut pick = rng.random_range(0..total);
    for (hook_type, weight) in HOOK_TYPES {
        if pick < *weight {
            return hook_type;
        }
        pick -= weight;
    }
    "all"
}

/// The channel events generated, in turn.
pub const CHANNEL_EVENTS: &[&str] = &["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_DESTROY"];

/// A channel event body of `account`, Kazoo-shaped.
pub fn channel_body(account: &AccountId, event_name: &str, sequence: usize) -> Value {
    json!({
        "Event-Category": "call_event",
        "Event-Name": event_name,
        "Call-ID": format!("call-{sequence}@203.0.113.10"),
        "Call-Direction": if sequence.is_multiple_of(2) { "inbound" } else { "outbound" },
        "Caller-ID-Name": "Bob Jones",
        "Caller-ID-Number": "+14085550199",
        "Callee-ID-Number": "+14155550100",
        "Channel-Name": "sofia/sipinterface_1/+14085550199@203.0.113.10",
        "Channel-Is-Loopback": sequence.is_multiple_of(10),
        "Timestamp": 63877219205_i64,
        "From": "+14085550199@203.0.113.10",
        "To": "+14155550100@10.0.0.11:5060",
        "Request": "+14155550100@10.0.0.11:5060",
        "Custom-Channel-Vars": {"Account-ID": account, "Realm": "acme.sip.example.net", "Resource-ID": "r1"},
    })
}

/// `VmRSS` of this process, in bytes.
pub fn resident_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kibibytes| kibibytes * 1024.0)
}
