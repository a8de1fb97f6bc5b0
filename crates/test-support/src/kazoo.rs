//! Kazoo as the Kazoo-mode tests meet it: the tokens and keys of `fixtures/kazoo` (see its
//! README), tokens minted here in Kazoo's format, the fixture account tree written into a store,
//! and a Crossbar stand-in on 127.0.0.1 serving the master's login, the signing keys and
//! `tokeninfo`.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512, RsaKeyPair};
use serde_json::{Map, Value, json};
use webhooks_model::ids::AccountId;
use webhooks_storage::{Account, NewAccount, Store};

use crate::receiver::{Captured, Receiver, Reply};

/// The key id of the fixture signing key (and of its replacement in `fixtures/kazoo/rotated`).
pub const KID: &str = "96247ed90b4bec8294c09ae6ece923a2";
/// The master account: a super-duper admin without ancestors.
pub const MASTER: &str = "1f0e2d3c4b5a69788796a5b4c3d2e1f0";
/// A reseller under the master.
pub const RESELLER: &str = "b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2";
/// A customer under the reseller: the account of the `user_auth` and `api_auth` tokens.
pub const SUB1: &str = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d";
/// Another customer under the reseller.
pub const SUB2: &str = "4c5d6e7f8091a2b3c4d5e6f708192a3b";
/// A customer directly under the master, outside the reseller.
pub const SIBLING: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";
/// The master API key the stand-in accepts on `PUT /v2/api_auth`.
pub const MASTER_API_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A file of `fixtures/kazoo`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/kazoo").join(name)
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|error| panic!("fixture {name}: {error}"))
}

/// The token named `name` in `file` (`name token` lines).
fn token_in(file: &str, name: &str) -> String {
    read_fixture(file)
        .lines()
        .find_map(|line| line.split_once(' ').filter(|(key, _)| *key == name).map(|(_, token)| token.trim().to_owned()))
        .unwrap_or_else(|| panic!("no token {name} in {file}"))
}

/// A token of `fixtures/kazoo/tokens.txt`: `user_auth`, `api_auth`, `master_api_auth`,
/// `reseller_api_auth`, `sibling_api_auth`, `expired`, `wrong_kid`, `tampered`, `rotated_key`.
pub fn token(name: &str) -> String {
    token_in("tokens.txt", name)
}

/// A token signed by the replacement key, under the same key id (`fixtures/kazoo/rotated`).
pub fn rotated_token(name: &str) -> String {
    token_in("rotated/tokens.txt", name)
}

/// The fixture signing key's public half, as Crossbar serves it.
pub fn public_key_pem() -> String {
    read_fixture("public_key.pem")
}

/// The replacement key's public half.
pub fn rotated_public_key_pem() -> String {
    read_fixture("rotated/public_key.pem")
}

/// A token with `header` and `claims`, signed with the fixture key when `header.alg` is `RS256`,
/// `RS384` or `RS512`, and with an empty signature otherwise (`none`, say).
pub fn mint(header: &Value, claims: &Value) -> String {
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let padding = match header["alg"].as_str() {
        Some("RS256") => &RSA_PKCS1_SHA256,
        Some("RS384") => &RSA_PKCS1_SHA384,
        Some("RS512") => &RSA_PKCS1_SHA512,
        _ => return format!("{signing_input}."),
    };
    let pem = read_fixture("private_key.pem");
    let base64: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    let der = STANDARD.decode(base64).expect("the fixture private key is base64");
    let key = RsaKeyPair::from_der(&der).expect("the fixture private key is PKCS#1");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(padding, &ring::rand::SystemRandom::new(), signing_input.as_bytes(), &mut signature)
        .expect("signing works");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The claims of an API-key token of `account` valid for an hour.
pub fn api_claims(account: &str) -> Value {
    let exp = webhooks_model::time::unix_seconds() + 3600;
    json!({"account_id": account, "method": "cb_api_auth", "exp": exp, "iss": "kazoo"})
}

/// Writes the fixture tree into `store`, parents first: the master, the reseller under it, sub1
/// and sub2 under the reseller, the sibling under the master. Returns them in that order.
pub async fn create_tree(store: &Store) -> Vec<Account> {
    let mut created: Vec<Account> = Vec::new();
    for (id, name, parent) in [
        (MASTER, "Acme Voice", None),
        (RESELLER, "Reseller One", Some(MASTER)),
        (SUB1, "Acme Customer", Some(RESELLER)),
        (SUB2, "Beta Customer", Some(RESELLER)),
        (SIBLING, "Direct Customer", Some(MASTER)),
    ] {
        let parent = parent.and_then(|parent| created.iter().find(|account| account.id.as_str() == parent));
        let account = store
            .insert_account(&NewAccount {
                id: id.parse::<AccountId>().expect("a fixture id"),
                name: name.to_owned(),
                parent: parent.map(|parent| (parent.id.clone(), parent.tree.clone())),
                api_key: uuid::Uuid::new_v4().simple().to_string(),
                superduper_admin: id == MASTER,
                doc: Map::new(),
            })
            .await
            .expect("a fixture account is created");
        created.push(account);
    }
    created
}

/// What the stand-in knows.
#[derive(Default)]
struct Cluster {
    /// Signing keys by id, as PEM.
    keys: BTreeMap<String, String>,
    /// Session tokens handed out for the master API key and not yet forgotten.
    sessions: HashSet<String>,
    /// Tokens `tokeninfo` refuses.
    revoked: HashSet<String>,
    /// Accounts by id: `(ancestors root first, Crossbar's data of the account)`.
    accounts: BTreeMap<String, (Vec<String>, Value)>,
    /// Rows of a `descendants` page; 0 is Crossbar's default, 50.
    page_size: usize,
    /// Accounts `descendants` leaves out, as a listing read before they were created does.
    unlisted: HashSet<String>,
}

/// A Crossbar stand-in on 127.0.0.1: `PUT /v2/api_auth` (the master API key only),
/// `GET /v2/auth/keys[/{KID}]` (with a session token) and `POST /v2/auth/tokeninfo`, with
/// Crossbar's envelopes. Stops when dropped, after which connections to it are refused.
pub struct CrossbarStandIn {
    receiver: Receiver,
    cluster: Arc<Mutex<Cluster>>,
}

impl CrossbarStandIn {
    /// A stand-in serving the fixture key under [`KID`].
    pub async fn start() -> Self {
        let cluster = Arc::new(Mutex::new(Cluster::default()));
        cluster.lock().expect("cluster").keys.insert(KID.to_owned(), public_key_pem());
        let serving = Arc::clone(&cluster);
        let receiver = Receiver::start(move |request, _| answer(&mut serving.lock().expect("cluster"), request)).await;
        Self { receiver, cluster }
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.receiver.url("")
    }

    /// Serves `pem` as key `kid` from now on (Kazoo resetting its key keeps the id).
    pub fn set_key(&self, kid: &str, pem: &str) {
        self.cluster.lock().expect("cluster").keys.insert(kid.to_owned(), pem.to_owned());
    }

    /// Forgets every session, as a reset of Kazoo's key does: the next authenticated call gets 401.
    pub fn end_sessions(&self) {
        self.cluster.lock().expect("cluster").sessions.clear();
    }

    /// Makes `tokeninfo` refuse `token`, as Kazoo does once its session is revoked.
    pub fn revoke(&self, token: &str) {
        self.cluster.lock().expect("cluster").revoked.insert(token.to_owned());
    }

    /// Serves account `id` named `name` under `parent` (which it must serve already), with
    /// Crossbar's `data` fields `extra` (`enabled`, `is_reseller`, `superduper_admin`, ...).
    pub fn put_account(&self, id: &str, name: &str, parent: Option<&str>, extra: Value) {
        let mut cluster = self.cluster.lock().expect("cluster");
        let tree = match parent {
            Some(parent) => {
                let (tree, _) = cluster.accounts.get(parent).expect("the parent is served");
                tree.iter().cloned().chain([parent.to_owned()]).collect()
            }
            None => Vec::new(),
        };
        let mut data = json!({"id": id, "name": name, "enabled": true});
        if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
            data.extend(extra);
        }
        cluster.accounts.insert(id.to_owned(), (tree, data));
    }

    /// Serves the fixture tree: the master (super-duper admin and reseller), the reseller under
    /// it, sub1 and sub2 under the reseller, the sibling under the master.
    pub fn put_fixture_tree(&self) {
        self.put_account(MASTER, "Acme Voice", None, json!({"superduper_admin": true, "is_reseller": true}));
        self.put_account(RESELLER, "Reseller One", Some(MASTER), json!({"is_reseller": true, "reseller_id": MASTER}));
        self.put_account(SUB1, "Acme Customer", Some(RESELLER), json!({"reseller_id": RESELLER}));
        self.put_account(SUB2, "Beta Customer", Some(RESELLER), json!({"reseller_id": RESELLER}));
        self.put_account(SIBLING, "Direct Customer", Some(MASTER), json!({"reseller_id": MASTER}));
    }

    /// Moves account `id` under `parent`, rewriting the tree of its whole subtree, as
    /// `POST /v2/accounts/{A}/move` does.
    pub fn move_account(&self, id: &str, parent: &str) {
        let mut cluster = self.cluster.lock().expect("cluster");
        let new: Vec<String> = cluster.accounts[parent].0.iter().cloned().chain([parent.to_owned()]).collect();
        for (member, (tree, _)) in &mut cluster.accounts {
            if member == id {
                tree.clone_from(&new);
            } else if let Some(at) = tree.iter().position(|ancestor| ancestor == id) {
                *tree = new.iter().cloned().chain(tree[at..].iter().cloned()).collect();
            }
        }
    }

    /// Forgets account `id`, as Kazoo's deletion does.
    pub fn remove_account(&self, id: &str) {
        self.cluster.lock().expect("cluster").accounts.remove(id);
    }

    /// Leaves account `id` out of `descendants` listings, as one read just before Kazoo created
    /// it would; it is still served on its own.
    pub fn leave_out_of_listings(&self, id: &str) {
        self.cluster.lock().expect("cluster").unlisted.insert(id.to_owned());
    }

    /// Serves `descendants` `size` rows a page.
    pub fn set_page_size(&self, size: usize) {
        self.cluster.lock().expect("cluster").page_size = size;
    }

    /// Everything it received.
    pub fn requests(&self) -> Vec<Captured> {
        self.receiver.requests()
    }

    /// How many `method path` requests it received.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests().iter().filter(|request| request.method == method && request.path() == path).count()
    }
}

/// Crossbar's success envelope around `data`.
fn success(status: u16, data: Value, auth_token: Option<&str>) -> Reply {
    let mut envelope = json!({
        "data": data,
        "node": "crossbar-stand-in",
        "request_id": uuid::Uuid::new_v4().simple().to_string(),
        "revision": "undefined",
        "status": "success",
        "timestamp": "2026-12-07T00:00:00Z",
        "version": "4.3.0",
    });
    if let Some(token) = auth_token {
        envelope["auth_token"] = json!(token);
    }
    json_reply(status, &envelope)
}

/// Crossbar's error envelope.
fn failure(status: u16, message: &str, data: Value) -> Reply {
    let envelope = json!({"data": data, "error": status.to_string(), "message": message, "status": "error"});
    json_reply(status, &envelope)
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Reply::Answer(status, vec![("content-type".into(), "application/json".into())], body.to_string())
}

/// Crossbar's answer for an account it does not have.
fn bad_identifier(id: &str) -> Reply {
    failure(404, "bad_identifier", json!({"cause": id, "message": "bad identifier"}))
}

/// Kazoo's data manager's notice of a change of account `id` on the `configuration` exchange
/// (`event` is `doc_created`, `doc_edited` or `doc_deleted`), as in `bus/account_*.json` of the
/// Kazoo fixtures: `(routing key, body)`; the body names the account, and carries no document.
pub fn account_notice(event: &str, id: &str) -> (String, Value) {
    let now = webhooks_model::time::gregorian_now();
    let body = json!({
        "ID": id,
        "Origin-Cache": "kazoo_data_cache",
        "Type": "account",
        "Database": "accounts",
        "Rev": format!("2-{}", uuid::Uuid::new_v4().simple()),
        "Account-ID": id,
        "Date-Modified": now,
        "Date-Created": now,
        "Is-Soft-Deleted": false,
        "Event-Category": "configuration",
        "Event-Name": event,
        "App-Name": "datamgr",
        "App-Version": "4.0.0",
        "Node": "kazoo_apps@apps1.example.net",
        "Msg-ID": uuid::Uuid::new_v4().simple().to_string(),
    });
    (format!("{event}.accounts.account.{id}"), body)
}

/// Answers one request as Crossbar would.
fn answer(cluster: &mut Cluster, request: &Captured) -> Reply {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let authenticated = request.header("x-auth-token").is_some_and(|token| cluster.sessions.contains(token));
    let unauthorized = || failure(401, "invalid_credentials", json!({"message": "invalid credentials"}));
    let path: Vec<&str> = request.path().trim_matches('/').split('/').collect();
    match (request.method.as_str(), path.as_slice()) {
        ("PUT", ["v2", "api_auth"]) => {
            if body["data"]["api_key"] != MASTER_API_KEY {
                return unauthorized();
            }
            let session = uuid::Uuid::new_v4().simple().to_string();
            cluster.sessions.insert(session.clone());
            let data = json!({"account_id": MASTER, "account_name": "Acme Voice", "is_reseller": true});
            success(201, data, Some(&session))
        }
        ("GET", ["v2", "auth", "keys"]) if authenticated => {
            success(200, json!(cluster.keys.keys().collect::<Vec<_>>()), None)
        }
        ("GET", ["v2", "auth", "keys", kid]) if authenticated => match cluster.keys.get(*kid) {
            Some(pem) => success(200, json!({"public_key_pem": pem}), None),
            None => failure(404, "bad_identifier", json!({"cause": kid, "message": "bad identifier"})),
        },
        ("GET", ["v2", "auth", "keys", ..]) => unauthorized(),
        ("GET", ["v2", "accounts", ..]) if !authenticated => unauthorized(),
        ("GET", ["v2", "accounts", id]) => match cluster.accounts.get(*id) {
            Some((_, data)) => success(200, data.clone(), None),
            None => bad_identifier(id),
        },
        ("GET", ["v2", "accounts", id, "tree"]) => match cluster.accounts.get(*id) {
            Some((tree, _)) => {
                let named = |ancestor: &String| {
                    let name = cluster.accounts.get(ancestor).map(|(_, data)| data["name"].clone());
                    json!({"id": ancestor, "name": name.unwrap_or(Value::Null)})
                };
                success(200, Value::Array(tree.iter().map(named).collect()), None)
            }
            None => bad_identifier(id),
        },
        ("GET", ["v2", "accounts", id, "descendants"]) => {
            if !cluster.accounts.contains_key(*id) {
                return bad_identifier(id);
            }
            let start = request.query_param("start_key").unwrap_or_default();
            let size = if cluster.page_size == 0 { 50 } else { cluster.page_size };
            let mut rows = cluster
                .accounts
                .iter()
                .filter(|(member, (tree, _))| {
                    member.as_str() >= start.as_str()
                        && tree.iter().any(|a| a == id)
                        && !cluster.unlisted.contains(member.as_str())
                })
                .map(|(member, (tree, data))| {
                    json!({"id": member, "name": data["name"], "realm": data["realm"], "tree": tree})
                });
            let page: Vec<Value> = rows.by_ref().take(size).collect();
            let mut reply = json!({"data": page, "page_size": page.len(), "status": "success"});
            if let Some(next) = rows.next() {
                reply["next_start_key"] = next["id"].clone();
            }
            json_reply(200, &reply)
        }
        ("POST", ["v2", "auth", "tokeninfo"]) => {
            let token = body["data"]["token"].as_str().unwrap_or_default();
            let claims = token
                .split('.')
                .nth(1)
                .and_then(|claims| URL_SAFE_NO_PAD.decode(claims).ok())
                .and_then(|claims| serde_json::from_slice::<Value>(&claims).ok());
            let expired =
                |claims: &Value| claims["exp"].as_i64().is_some_and(|exp| exp <= webhooks_model::time::unix_seconds());
            match claims {
                Some(claims) if !cluster.revoked.contains(token) && !expired(&claims) => {
                    let data = json!({"account_id": claims["account_id"], "owner_id": claims["owner_id"], "apps": []});
                    success(200, data, Some(token))
                }
                _ => unauthorized(),
            }
        }
        _ => failure(404, "not_found", json!({"message": "not found"})),
    }
}
