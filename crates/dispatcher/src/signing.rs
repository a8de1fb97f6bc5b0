//! Standard Webhooks signatures (docs/kazoo.md#signing): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256>` over `"{id}.{timestamp}.{body}"`, keyed by the
//! base64-decoded part of the hook's `whsec_` secret.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of Standard Webhooks secrets.
const SECRET_PREFIX: &str = "whsec_";

/// Decodes secrets with or without their `=` padding, as the reference implementations do.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a stored secret cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSecret {
    /// Not `whsec_` followed by base64.
    #[error("signing secret is not whsec_ followed by base64")]
    Format,
    /// The key decodes to nothing.
    #[error("signing secret has an empty key")]
    Empty,
}

/// A hook's signing key: the decoded bytes of its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key never reaches logs.
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// The key of a `whsec_<base64>` secret. The API checks the key length (24 to 64 bytes)
    /// when the secret is set; here any non-empty key signs, so a secret stored by other means
    /// still does.
    pub fn from_secret(secret: &str) -> Result<Self, InvalidSecret> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(InvalidSecret::Format)?;
        let key = LENIENT.decode(encoded.trim()).map_err(|_| InvalidSecret::Format)?;
        if key.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        Ok(Self(key))
    }

    /// The `webhook-signature` value for message `id` sent at `timestamp` (Unix seconds) with
    /// exactly `body` as its body.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_signature_is_reproduced() {
        // The specification's published example (standard-webhooks, "Verifying signatures").
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret");
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn malformed_secrets_are_refused() {
        assert_eq!(SigningKey::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(InvalidSecret::Format));
        assert_eq!(SigningKey::from_secret("whsec_not base64!"), Err(InvalidSecret::Format));
        assert_eq!(SigningKey::from_secret("whsec_"), Err(InvalidSecret::Empty));
    }

    #[test]
    fn secrets_sign_alike_with_or_without_padding() {
        let padded = SigningKey::from_secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX").expect("valid secret");
        let unpadded = SigningKey::from_secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRY").expect("valid secret");
        let padded_short = SigningKey::from_secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRY=").expect("valid secret");
        assert_eq!(unpadded, padded_short);
        assert_ne!(padded, unpadded);
    }

    #[test]
    fn the_key_is_never_printed() {
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret");
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }
}
