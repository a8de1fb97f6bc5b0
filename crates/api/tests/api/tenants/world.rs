//! The tree of accounts the matrix runs on, each with a hook and an attempt, and the tokens of its
//! callers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use webhooks_api::auth::{Claims, TokenSigner};
use webhooks_model::ids::{AccountId, WebhookId, random_id};
use webhooks_model::time::unix_seconds;
use webhooks_storage::PageRequest;
use webhooks_test_support::app::TestApp;
use webhooks_test_support::store::kept_failure;

use super::{Caller, Member, Owner, Snapshot, Target, Tenant, World};

impl World {
    /// A new reseller, sub-account and unrelated account under the master of `app`, each (and
    /// the master) with a hook and an attempt of it.
    pub(super) async fn build(app: &TestApp, master_token: &str) -> World {
        let client = &app.client;
        let master = app.master_id.parse::<AccountId>().expect("the master id");
        let documents = [
            json!({"name": "master"}),
            json!({"name": "reseller", "is_reseller": true}),
            json!({"name": "sub"}),
            json!({"name": "unrelated"}),
        ];
        let (reseller, reseller_key) = create_account(app, master_token, &master, &documents[1]).await;
        let reseller_token = client.token(&reseller_key).await;
        let (sub, sub_key) = create_account(app, &reseller_token, &reseller, &documents[2]).await;
        let (unrelated, unrelated_key) = create_account(app, master_token, &master, &documents[3]).await;
        let accounts = [
            (master, app.master_key.clone(), master_token.to_owned()),
            (reseller, reseller_key, reseller_token),
            (sub, sub_key.clone(), client.token(&sub_key).await),
            (unrelated, unrelated_key.clone(), client.token(&unrelated_key).await),
        ];
        let mut members = Vec::new();
        let mut attempts = Vec::new();
        for ((id, key, token), document) in accounts.into_iter().zip(documents) {
            let hook = client.create_hook(master_token, id.as_str(), &hook_document("fixture")).await;
            let event = random_id();
            let attempt = kept_failure(&id, &hook, &event);
            members.push(Member { id, document, key, token, hook, attempt: attempt.id.clone(), event });
            attempts.push(attempt);
        }
        app.store.insert_attempts(&attempts).await.expect("attempts stored");

        let secret = app.store.setting("auth_token_secret").await.expect("read").expect("the token secret");
        let master_id = &members[0].id;
        let expired = TokenSigner::new(secret.as_bytes(), 0).issue(master_id);
        let (header, rest) = master_token.split_once('.').expect("a token");
        let (claims, signature) = rest.split_once('.').expect("a token");
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        let forged_signature = format!("{header}.{claims}.{first}{}", &signature[1..]);
        assert_ne!(forged_signature, master_token);
        let sub_signature = members[2].token.rsplit_once('.').expect("a token").1;
        let now = unix_seconds().unsigned_abs();
        let escalated = Claims { account_id: master_id.clone(), iat: now, exp: now + 3600 };
        let escalated = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&escalated).expect("claims serialize"));
        let forged_claims = format!("{header}.{escalated}.{sub_signature}");
        World {
            members,
            expired,
            forged_signature,
            forged_claims,
            unknown_account: AccountId::generate(),
            unknown_key: webhooks_api::accounts::generate_api_key(),
            stray_hook: WebhookId::generate(),
            stray_attempt: random_id(),
        }
    }

    pub(super) fn member(&self, tenant: Tenant) -> &Member {
        &self.members[tenant as usize]
    }

    pub(super) fn token(&self, caller: Caller) -> Option<&str> {
        match caller {
            Caller::Token(tenant) => Some(&self.member(tenant).token),
            Caller::Anonymous => None,
            Caller::Expired => Some(&self.expired),
            Caller::ForgedSignature => Some(&self.forged_signature),
            Caller::ForgedClaims => Some(&self.forged_claims),
        }
    }

    pub(super) fn account_path(&self, target: Target) -> String {
        match target {
            Target::Tenant(tenant) => self.member(tenant).id.to_string(),
            Target::Unknown => self.unknown_account.to_string(),
            Target::Malformed => "nothex".into(),
        }
    }

    pub(super) fn hook(&self, owner: Owner) -> &WebhookId {
        match owner {
            Owner::Tenant(tenant) => &self.member(tenant).hook,
            Owner::Nobody => &self.stray_hook,
        }
    }

    pub(super) fn attempt(&self, owner: Owner) -> &str {
        match owner {
            Owner::Tenant(tenant) => &self.member(tenant).attempt,
            Owner::Nobody => &self.stray_attempt,
        }
    }

    /// Everything the matrix could change: every account, and the hooks (with their secrets)
    /// and attempts of the world's accounts.
    pub(super) async fn snapshot(&self, app: &TestApp) -> Snapshot {
        let store = &app.store;
        let everything = PageRequest::default();
        let accounts = store.all_accounts().await.expect("accounts");
        let mut hooks = Vec::new();
        let mut attempts = Vec::new();
        for member in &self.members {
            for hook in store.list_webhooks(&member.id, &everything).await.expect("hooks").items {
                let secret = store.signing_secret(&hook.id).await.expect("a secret");
                hooks.push((hook, secret));
            }
            attempts
                .extend(store.list_attempts(&member.id, None, 0, i64::MAX, &everything).await.expect("attempts").items);
        }
        Snapshot { accounts, hooks, attempts }
    }
}

/// Creates a sub-account of `parent` from `document`; its id and API key.
async fn create_account(app: &TestApp, token: &str, parent: &AccountId, document: &Value) -> (AccountId, String) {
    let (id, key) = app.client.create_account_from(token, parent.as_str(), document).await;
    (id.parse().expect("an account id"), key)
}

/// A hook document named `name`.
pub(super) fn hook_document(name: &str) -> Value {
    json!({"name": name, "uri": "http://127.0.0.1:9/matrix", "hook": "channel_create"})
}

/// [`hook_document`] in its envelope.
pub(super) fn hook_body(name: &str) -> Value {
    json!({"data": hook_document(name)})
}
