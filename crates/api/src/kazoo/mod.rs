//! Kazoo mode: the tokens Kazoo's Crossbar issues, verified here (their format, Crossbar's rules
//! and what differs: `docs/kazoo.md#kazoos-tokens`).
//!
//! `crossbar` is the client of Crossbar's REST API (the master account's session, the signing
//! keys, `tokeninfo`; the account reads of an account sync belong beside them); `keys` holds the
//! signing keys by key id and fetches them again, rate-limited; `token` reads one JWT.
//! [`KazooTokens`] puts them together behind a cache of verified tokens, so a token costs one
//! signature check (and, with `tokeninfo`, one call to Crossbar) however often it is used.

pub mod accounts;
pub mod crossbar;
mod keys;
mod mirror;
mod token;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use webhooks_model::config::{InvalidPublicKeyEntry, KazooConfig};
use webhooks_model::ids::AccountId;
use webhooks_model::time::unix_seconds;

pub use self::accounts::{AccountSync, Reconciled, SyncError};
pub use self::crossbar::{CrossbarClient, CrossbarError};
use self::keys::{Keys, PemError, PublicKey, Refetched};
pub use self::mirror::CouchMirror;
use self::token::SignedToken;
pub use self::token::TokenRefusal;

/// The longest a verified token is used without being verified again, whatever its `exp`.
const LONGEST_CACHED: Duration = Duration::from_secs(24 * 3600);

/// Why Kazoo mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KazooSetupError {
    /// A Kazoo setting is given while `crossbar_url` is not.
    #[error("kazoo.{0} is set but kazoo.crossbar_url is not, so Kazoo mode would be off")]
    WithoutCrossbar(&'static str),
    /// Neither keys nor the API key to fetch them.
    #[error("Kazoo mode needs kazoo.api_key (to read the signing keys from Crossbar) or kazoo.public_keys")]
    NoKeySource,
    /// A `public_keys` entry is not `KID=PEM-file`.
    #[error(transparent)]
    PublicKeyEntry(#[from] InvalidPublicKeyEntry),
    /// A key file cannot be read.
    #[error("kazoo.public_keys: reading {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file holds no usable key.
    #[error("kazoo.public_keys: {path}: {source}")]
    KeyPem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: PemError,
    },
    /// The Crossbar client cannot be built.
    #[error(transparent)]
    Crossbar(#[from] CrossbarError),
}

/// A verified Kazoo token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The token's account (`account_id`).
    pub account_id: AccountId,
    /// The account it acts as (a complete `as` claim), to be checked against the account tree.
    pub acting_as: Option<AccountId>,
    /// Its expiry, Unix seconds.
    pub exp: Option<u64>,
    /// Until when it is taken as verified without checking it again.
    cached_until: Instant,
}

/// A token's SHA-256 digest: what verified tokens are cached by, so the cache holds 32 bytes per
/// token rather than the bearer token itself (several hundred bytes).
type TokenDigest = [u8; 32];

/// Each verified token stays in the cache until its own `cached_until`.
struct UntilCachedUntil;

impl Expiry<TokenDigest, Arc<VerifiedToken>> for UntilCachedUntil {
    fn expire_after_create(
        &self,
        _: &TokenDigest,
        token: &Arc<VerifiedToken>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(token.cached_until.saturating_duration_since(created_at))
    }
}

/// Kazoo mode's token verification.
pub struct KazooTokens {
    keys: Keys,
    crossbar: Arc<CrossbarClient>,
    /// With `tokeninfo`: how long Crossbar's confirmation of a token holds.
    tokeninfo: Option<Duration>,
    verified: Cache<TokenDigest, Arc<VerifiedToken>>,
}

impl std::fmt::Debug for KazooTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KazooTokens")
            .field("crossbar", &self.crossbar)
            .field("tokeninfo", &self.tokeninfo)
            .field("verified", &self.verified.entry_count())
            .finish_non_exhaustive()
    }
}

impl KazooTokens {
    /// Kazoo mode as `config` sets it up, `None` when it is off. Without `public_keys`, the keys
    /// are read from Crossbar now (a failure is logged: they are read when a token needs them).
    pub async fn start(config: &KazooConfig) -> Result<Option<Self>, KazooSetupError> {
        if let Some(setting) = config.stray_setting() {
            return Err(KazooSetupError::WithoutCrossbar(setting));
        }
        if !config.enabled() {
            return Ok(None);
        }
        let crossbar = Arc::new(CrossbarClient::new(config)?);
        let files = config.public_key_files()?;
        let keys = if files.is_empty() {
            if config.api_key.is_none() {
                return Err(KazooSetupError::NoKeySource);
            }
            let interval = Duration::from_secs(config.key_refetch_interval_seconds);
            let keys = Keys::from_crossbar(Arc::clone(&crossbar), interval);
            keys.load_all().await;
            keys
        } else {
            Keys::fixed(read_key_files(files)?)
        };
        let verified =
            Cache::builder().max_capacity(config.verified_tokens_capacity).expire_after(UntilCachedUntil).build();
        let tokeninfo = config.tokeninfo.then(|| Duration::from_secs(config.tokeninfo_cache_seconds));
        Ok(Some(Self { keys, crossbar, tokeninfo, verified }))
    }

    /// The Crossbar client.
    pub fn crossbar(&self) -> &Arc<CrossbarClient> {
        &self.crossbar
    }

    /// The verified token, from the cache when it was verified before.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenRefusal> {
        let now = unix_seconds().unsigned_abs();
        // Requests arriving together with one new token share one verification.
        let verified = self
            .verified
            .try_get_with(Sha256::digest(token).into(), self.verify_afresh(token, now))
            .await
            .map_err(|refusal| (*refusal).clone())?;
        // Cache times count from the whole second, so an entry can outlive its `exp` by a fraction.
        if verified.exp.is_some_and(|exp| exp <= now) {
            return Err(TokenRefusal::Expired);
        }
        Ok(verified)
    }

    /// Verifies `token` fully at `now` (Unix seconds): signature, expiry and, with `tokeninfo`,
    /// Crossbar's word.
    async fn verify_afresh(&self, token: &str, now: u64) -> Result<Arc<VerifiedToken>, TokenRefusal> {
        let signed = SignedToken::parse(token)?;
        if !self.keys.get(&signed.kid).is_some_and(|key| signed.signed_by(&key)) {
            if self.keys.refetch(&signed.kid).await == Refetched::Replaced {
                // Kazoo replaced the key: what the old one signed is no longer valid.
                self.verified.invalidate_all();
            }
            match self.keys.get(&signed.kid) {
                None => return Err(TokenRefusal::UnknownKey(signed.kid)),
                Some(key) if !signed.signed_by(&key) => return Err(TokenRefusal::BadSignature),
                Some(_) => {}
            }
        }
        let claims = signed.claims(now)?;
        let acting_as = claims.acting_as()?;
        if self.tokeninfo.is_some() {
            self.confirm(token).await?;
        }
        // Until its expiry, or Crossbar's confirmation's; a token that never expires and needs
        // no confirmation is verified at each use.
        let until_exp = claims.exp.map(|exp| Duration::from_secs(exp - now).min(LONGEST_CACHED));
        let cached_for = match (until_exp, self.tokeninfo) {
            (Some(until_exp), Some(confirmation)) => until_exp.min(confirmation),
            (until_exp, confirmation) => until_exp.or(confirmation).unwrap_or_default(),
        };
        Ok(Arc::new(VerifiedToken {
            account_id: claims.account_id,
            acting_as,
            exp: claims.exp,
            cached_until: Instant::now() + cached_for,
        }))
    }

    /// Asks Crossbar whether `token` is still valid; refused when Crossbar cannot say.
    async fn confirm(&self, token: &str) -> Result<(), TokenRefusal> {
        match self.crossbar.tokeninfo(token).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_unauthorized() => Err(TokenRefusal::NotConfirmed),
            Err(error) => {
                tracing::warn!(%error, "a Kazoo token is refused: Crossbar's tokeninfo cannot confirm it");
                Err(TokenRefusal::Unconfirmable(error.to_string()))
            }
        }
    }
}

/// Reads the configured key files.
fn read_key_files(files: Vec<(String, PathBuf)>) -> Result<HashMap<String, PublicKey>, KazooSetupError> {
    files
        .into_iter()
        .map(|(kid, path)| {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(source) => return Err(KazooSetupError::KeyFile { path, source }),
            };
            match PublicKey::from_pem(&text) {
                Ok(key) => Ok((kid, key)),
                Err(source) => Err(KazooSetupError::KeyPem { path, source }),
            }
        })
        .collect()
}
