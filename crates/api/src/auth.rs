//! Authentication (signed, expiring tokens any replica can verify: our own HS256 tokens, or in
//! Kazoo mode Kazoo's, see [`crate::kazoo`]) and authorization (a token acts on its own account,
//! its descendants, or anything when its account is a super-duper admin).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use webhooks_model::ids::AccountId;
use webhooks_model::time::unix_seconds;
use webhooks_storage::Account;

use crate::ApiState;
use crate::crossbar::{self, ApiError};

/// What a token says: whose it is and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account the token acts as.
    pub account_id: AccountId,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or unreadable claims.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

/// Issues and verifies HS256 JSON Web Tokens with a secret shared by every replica.
#[derive(Clone)]
pub struct TokenSigner {
    key: Hmac<Sha256>,
    lifetime_seconds: u64,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("TokenSigner").field("lifetime_seconds", &self.lifetime_seconds).finish_non_exhaustive()
    }
}

/// The fixed JOSE header of our tokens, `{"alg":"HS256","typ":"JWT"}` in base64url.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

impl TokenSigner {
    /// A signer with `secret`; tokens live `lifetime_seconds`.
    pub fn new(secret: &[u8], lifetime_seconds: u64) -> Self {
        // HMAC accepts keys of any length.
        let key = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("hmac takes any key length"));
        Self { key, lifetime_seconds }
    }

    /// A fresh token for `account`.
    pub fn issue(&self, account: &AccountId) -> String {
        let now = unix_seconds().unsigned_abs();
        let claims = Claims { account_id: account.clone(), iat: now, exp: now + self.lifetime_seconds };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{HEADER}.{payload}");
        let mut mac = self.key.clone();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        if header != HEADER {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.key.clone();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= unix_seconds().unsigned_abs() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The account `token` acts as: the one place where tokens are verified, our own HS256 ones in
/// standalone mode and Kazoo's in Kazoo mode. In Kazoo mode, as in Crossbar, an
/// `X-Auth-Account-ID` header (`account_header`) must name the token's account, and a token acting
/// `as` another account may do so only for one of its descendants (`docs/kazoo.md#kazoos-tokens`).
pub(crate) async fn authenticate(
    state: &ApiState,
    token: &str,
    account_header: Option<&str>,
) -> Result<AccountId, ApiError> {
    let Some(kazoo) = state.kazoo() else {
        return state.tokens().verify(token).map(|claims| claims.account_id).map_err(|error| {
            tracing::debug!(%error, "token refused");
            ApiError::InvalidCredentials
        });
    };
    let verified = kazoo.verify(token).await.map_err(|refusal| {
        tracing::debug!(%refusal, "Kazoo token refused");
        ApiError::InvalidCredentials
    })?;
    if account_header.is_some_and(|header| header != verified.account_id.as_str()) {
        tracing::debug!(account.id = %verified.account_id, "X-Auth-Account-ID names another account");
        return Err(ApiError::InvalidCredentials);
    }
    let Some(acting_as) = &verified.acting_as else { return Ok(verified.account_id.clone()) };
    // The token is verified: an account Kazoo created moments ago may be read from Crossbar.
    match state.account_for(acting_as, true).await? {
        Some(account) if account.tree.contains(&verified.account_id) => Ok(account.id.clone()),
        _ => {
            tracing::debug!(account.id = %verified.account_id, acting_as = %acting_as, "`as` names no descendant");
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// True when `caller` may act on `account`: itself, an ancestor of it, or a super-duper admin.
pub fn may_act_on(caller: &Account, account: &Account) -> bool {
    caller.superduper_admin || caller.id == account.id || account.tree.contains(&caller.id)
}

/// The account of the verified token, if the request carried one; its account must still exist.
async fn caller(state: &ApiState) -> Result<Option<Arc<Account>>, ApiError> {
    let Some(id) = crossbar::current().and_then(|meta| meta.caller) else {
        return Ok(None);
    };
    match state.account(&id).await? {
        Some(account) => Ok(Some(account)),
        None => Err(ApiError::InvalidCredentials),
    }
}

/// An authenticated caller acting on the account named in the path (`{account_id}`), checked in
/// Crossbar's order: account id shape, account existence, credentials, permission.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The account in the URL.
    pub account: Arc<Account>,
    /// The token's account.
    pub caller: Arc<Account>,
}

impl FromRequest for Scope {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<Data<ApiState>>().cloned();
        let raw_id = request.match_info().get("account_id").unwrap_or_default().to_owned();
        Box::pin(async move {
            let state = state.ok_or(ApiError::NotFound)?;
            let id: AccountId = raw_id.parse().map_err(|_| ApiError::BadAccountId(raw_id.clone()))?;
            let account = state.account(&id).await?.ok_or_else(|| ApiError::BadIdentifier(raw_id))?;
            let caller = caller(&state).await?.ok_or(ApiError::MissingCredentials)?;
            if !may_act_on(&caller, &account) {
                return Err(ApiError::Forbidden);
            }
            tracing::Span::current().record("account.id", tracing::field::display(&account.id));
            Ok(Self { account, caller })
        })
    }
}

/// The caller of a path that needs no token: `None` when anonymous.
#[derive(Debug, Clone)]
pub struct OptionalCaller(pub Option<Arc<Account>>);

impl OptionalCaller {
    /// True for a super-duper admin caller.
    pub fn is_superduper_admin(&self) -> bool {
        self.0.as_ref().is_some_and(|account| account.superduper_admin)
    }
}

impl FromRequest for OptionalCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<Data<ApiState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or(ApiError::NotFound)?;
            Ok(Self(caller(&state).await?))
        })
    }
}

/// A caller who must be authenticated, on a path without an account.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Account>);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<Data<ApiState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or(ApiError::NotFound)?;
            caller(&state).await?.map(Self).ok_or(ApiError::MissingCredentials)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_the_same_secret_only() {
        let account = AccountId::generate();
        let signer = TokenSigner::new(b"secret one", 60);
        let token = signer.issue(&account);
        assert_eq!(signer.verify(&token).map(|claims| claims.account_id), Ok(account));
        assert_eq!(TokenSigner::new(b"secret two", 60).verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_and_malformed_tokens_are_refused() {
        let signer = TokenSigner::new(b"secret", 0);
        let token = signer.issue(&AccountId::generate());
        assert_eq!(signer.verify(&token), Err(TokenError::Expired));
        assert_eq!(signer.verify("not a token"), Err(TokenError::Malformed));
        assert_eq!(signer.verify("a.b.c"), Err(TokenError::Malformed));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let signer = TokenSigner::new(b"secret", 60);
        let token = signer.issue(&AccountId::generate());
        let parts: Vec<&str> = token.split('.').collect();
        let other = signer.issue(&AccountId::generate());
        let other_payload = other.split('.').nth(1).unwrap_or_default();
        let forged = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
        assert_eq!(signer.verify(&forged), Err(TokenError::BadSignature));
    }
}
