//! Kazoo's token signing keys by key id (`kid`): given in the settings, or read from Crossbar at
//! start and read again when a token needs it, at most once per interval, since Kazoo can
//! replace a key under the same id.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{RsaParameters, UnparsedPublicKey};

use super::crossbar::CrossbarClient;

/// An RSA public key: the DER `RSAPublicKey` (PKCS#1) that Crossbar serves as PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    der: Vec<u8>,
}

/// Why a PEM text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// An SPKI key (`BEGIN PUBLIC KEY`) rather than Kazoo's PKCS#1 form.
    #[error("a 'PUBLIC KEY' (SPKI) PEM; Kazoo's keys are PKCS#1 'RSA PUBLIC KEY' PEM")]
    Spki,
    /// No `RSA PUBLIC KEY` block, or its body is not base64 of a DER structure.
    #[error("not an 'RSA PUBLIC KEY' PEM")]
    NotRsaPublicKey,
}

const PEM_BEGIN: &str = "-----BEGIN RSA PUBLIC KEY-----";
const PEM_END: &str = "-----END RSA PUBLIC KEY-----";

impl PublicKey {
    /// The key of a PKCS#1 `RSA PUBLIC KEY` PEM.
    pub fn from_pem(text: &str) -> Result<Self, PemError> {
        let Some((_, rest)) = text.split_once(PEM_BEGIN) else {
            return Err(if text.contains("-----BEGIN PUBLIC KEY-----") {
                PemError::Spki
            } else {
                PemError::NotRsaPublicKey
            });
        };
        let body = rest.split_once(PEM_END).ok_or(PemError::NotRsaPublicKey)?.0;
        let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(base64).map_err(|_| PemError::NotRsaPublicKey)?;
        // A DER SEQUENCE; ring reads the rest at each verification.
        if der.first() != Some(&0x30) {
            return Err(PemError::NotRsaPublicKey);
        }
        Ok(Self { der })
    }

    /// True when `signature` is this key's RSASSA-PKCS1-v1_5 signature of `message`.
    pub fn verifies(&self, algorithm: &'static RsaParameters, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(algorithm, &self.der).verify(message, signature).is_ok()
    }
}

/// What a fetch caused by a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refetched {
    /// A key already known under that id was replaced: tokens it verified are no longer valid.
    Replaced,
    /// Anything else: a new key, the same key, no such key, or no fetch at all (the keys are
    /// fixed by the settings, Crossbar failed, or the last fetch was too recent).
    Other,
}

/// The signing keys, by key id.
#[derive(Debug)]
pub struct Keys {
    known: RwLock<HashMap<String, Arc<PublicKey>>>,
    /// Where to fetch keys; `None` when the settings fix them.
    crossbar: Option<Arc<CrossbarClient>>,
    /// The shortest time between two fetches caused by tokens.
    interval: Duration,
    /// When the last fetch caused by a token started; held during a fetch, so tokens arriving
    /// meanwhile wait for it rather than fetch again.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Keys {
    /// The keys the settings give; nothing is ever fetched.
    pub fn fixed(keys: HashMap<String, PublicKey>) -> Self {
        Self::new(keys.into_iter().map(|(kid, key)| (kid, Arc::new(key))).collect(), None, Duration::ZERO)
    }

    /// Keys read from `crossbar`, at most once per `interval` when tokens ask for them.
    pub fn from_crossbar(crossbar: Arc<CrossbarClient>, interval: Duration) -> Self {
        Self::new(HashMap::new(), Some(crossbar), interval)
    }

    fn new(known: HashMap<String, Arc<PublicKey>>, crossbar: Option<Arc<CrossbarClient>>, interval: Duration) -> Self {
        Self { known: RwLock::new(known), crossbar, interval, last_fetch: tokio::sync::Mutex::new(None) }
    }

    /// The key named `kid`, if known.
    pub fn get(&self, kid: &str) -> Option<Arc<PublicKey>> {
        self.known.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(kid).cloned()
    }

    /// Reads every key Crossbar lists. A failure is logged, not fatal: a replica starting while
    /// Crossbar is down fetches each key when a token first names it.
    pub async fn load_all(&self) {
        let Some(crossbar) = &self.crossbar else { return };
        let ids = match crossbar.key_ids().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "the Kazoo signing keys could not be read at start");
                return;
            }
        };
        for kid in ids {
            self.fetch(crossbar, &kid).await;
        }
        tracing::info!(
            keys = self.known.read().map(|known| known.len()).unwrap_or_default(),
            "Kazoo signing keys read"
        );
    }

    /// Reads `kid` again because a token needs it (unknown, or the known key refuses the
    /// token's signature), unless the last such read started less than the interval ago.
    pub async fn refetch(&self, kid: &str) -> Refetched {
        let Some(crossbar) = &self.crossbar else { return Refetched::Other };
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < self.interval) {
            tracing::debug!(kid, "signing key not fetched again: the last fetch is too recent");
            return Refetched::Other;
        }
        *last_fetch = Some(Instant::now());
        self.fetch(crossbar, kid).await
    }

    /// Reads `kid` from Crossbar into the known keys.
    async fn fetch(&self, crossbar: &CrossbarClient, kid: &str) -> Refetched {
        let key = match crossbar.public_key_pem(kid).await {
            Ok(Some(pem)) => PublicKey::from_pem(&pem),
            Ok(None) => {
                tracing::info!(kid, "Crossbar knows no signing key by this id");
                return Refetched::Other;
            }
            Err(error) => {
                tracing::warn!(kid, %error, "the Kazoo signing key could not be read");
                return Refetched::Other;
            }
        };
        let key = match key {
            Ok(key) => Arc::new(key),
            Err(error) => {
                tracing::warn!(kid, %error, "Crossbar served a signing key that cannot be read");
                return Refetched::Other;
            }
        };
        let mut known = self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match known.insert(kid.to_owned(), key.clone()) {
            Some(previous) if previous != key => {
                tracing::info!(kid, "Kazoo signing key replaced");
                Refetched::Replaced
            }
            _ => Refetched::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pkcs1_rsa_public_keys_are_read() {
        let pem = "-----BEGIN RSA PUBLIC KEY-----\nMAMCAQE=\n-----END RSA PUBLIC KEY-----\n\n";
        assert_eq!(PublicKey::from_pem(pem).map(|key| key.der), Ok(vec![0x30, 0x03, 0x02, 0x01, 0x01]));
        let spki = "-----BEGIN PUBLIC KEY-----\nMAMCAQE=\n-----END PUBLIC KEY-----\n";
        assert_eq!(PublicKey::from_pem(spki), Err(PemError::Spki));
        for wrong in [
            "",
            "-----BEGIN RSA PUBLIC KEY-----\nMAMCAQE=\n",
            "-----BEGIN RSA PUBLIC KEY-----\n!!!\n-----END RSA PUBLIC KEY-----",
            "-----BEGIN RSA PUBLIC KEY-----\nAQID\n-----END RSA PUBLIC KEY-----",
        ] {
            assert_eq!(PublicKey::from_pem(wrong), Err(PemError::NotRsaPublicKey), "{wrong}");
        }
    }
}
