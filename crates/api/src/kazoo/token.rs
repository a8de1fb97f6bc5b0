//! One Kazoo token: a JWT whose header names an RSA algorithm (`RS256`, `RS384`, `RS512`) and
//! the signing key (`kid`), and whose claims name the account (`account_id`), possibly another
//! account it acts as (`as`), and the expiry (`exp`, Unix seconds).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512, RsaParameters,
};
use serde::Deserialize;
use webhooks_model::ids::AccountId;

use super::keys::PublicKey;

/// Why a Kazoo token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Not a JWT, or a header or claims that cannot be read.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// An algorithm Kazoo does not sign with (`none`, `HS256`, ...).
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    /// No key is known under the token's key id.
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// The known key refuses the signature.
    #[error("bad signature")]
    BadSignature,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Crossbar's `tokeninfo` refused the token.
    #[error("Crossbar refused the token")]
    NotConfirmed,
    /// Crossbar could not be asked about the token: refused, since it cannot be confirmed.
    #[error("Crossbar could not confirm the token: {0}")]
    Unconfirmable(String),
}

/// A token whose header was read, its signature not yet checked.
#[derive(Debug)]
pub struct SignedToken<'a> {
    /// `header.claims`, the signed text.
    signing_input: &'a str,
    /// The claims part, base64url.
    claims: &'a str,
    signature: Vec<u8>,
    algorithm: &'static RsaParameters,
    /// The signing key's id.
    pub kid: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// True for a key id that can be asked of Crossbar as a path segment: Kazoo's are 32 hex.
fn is_plausible_kid(kid: &str) -> bool {
    (1..=128).contains(&kid.len())
        && kid.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The JSON of a base64url part.
fn decode_part<T: for<'de> Deserialize<'de>>(part: &str, what: &'static str) -> Result<T, TokenRefusal> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenRefusal::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenRefusal::Malformed(what))
}

impl<'a> SignedToken<'a> {
    /// Reads the header of `token`: an RSA algorithm and a key id are required.
    pub fn parse(token: &'a str) -> Result<Self, TokenRefusal> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenRefusal::Malformed("not a JWT"))?;
        let (header, claims) = signing_input.split_once('.').ok_or(TokenRefusal::Malformed("not a JWT"))?;
        let header: Header = decode_part(header, "header")?;
        let algorithm = match header.alg.as_str() {
            "RS256" => &RSA_PKCS1_2048_8192_SHA256,
            "RS384" => &RSA_PKCS1_2048_8192_SHA384,
            "RS512" => &RSA_PKCS1_2048_8192_SHA512,
            other => return Err(TokenRefusal::Algorithm(other.chars().take(16).collect())),
        };
        let kid = header.kid.filter(|kid| is_plausible_kid(kid)).ok_or(TokenRefusal::Malformed("kid"))?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenRefusal::Malformed("signature"))?;
        Ok(Self { signing_input, claims, signature, algorithm, kid })
    }

    /// True when `key` made the signature.
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        key.verifies(self.algorithm, self.signing_input.as_bytes(), &self.signature)
    }

    /// The claims, once the signature is known good; refused when expired at `now` (Unix
    /// seconds).
    pub fn claims(&self, now: u64) -> Result<Claims, TokenRefusal> {
        let claims: Claims = decode_part(self.claims, "claims")?;
        if claims.exp.is_some_and(|exp| exp <= now) {
            return Err(TokenRefusal::Expired);
        }
        Ok(claims)
    }
}

/// The `as` claim: the account (and user) a token acts as, when both are given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct ActingAs {
    account_id: Option<String>,
    owner_id: Option<String>,
}

/// The claims of a Kazoo token that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The authenticated account.
    pub account_id: AccountId,
    /// Expiry, Unix seconds; Kazoo leaves it out only when token expiry is turned off.
    pub exp: Option<u64>,
    #[serde(rename = "as")]
    acting_as: Option<ActingAs>,
}

impl Claims {
    /// The account the token asks to act as: Crossbar honours `as` only with both its
    /// `account_id` and `owner_id`, and then only for a descendant of `account_id` (which the
    /// caller checks against the account tree).
    pub fn acting_as(&self) -> Result<Option<AccountId>, TokenRefusal> {
        match &self.acting_as {
            Some(ActingAs { account_id: Some(account), owner_id: Some(_) }) => {
                account.parse().map(Some).map_err(|_| TokenRefusal::Malformed("as.account_id"))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn token(header: serde_json::Value, claims: serde_json::Value) -> String {
        format!("{}.{}.c2ln", part(&header), part(&claims))
    }

    const ACCOUNT: &str = "3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d";

    #[test]
    fn only_rsa_algorithms_with_a_key_id_are_read() {
        let claims = serde_json::json!({"account_id": ACCOUNT});
        for alg in ["RS256", "RS384", "RS512"] {
            let text = token(serde_json::json!({"alg": alg, "kid": "k1"}), claims.clone());
            assert_eq!(SignedToken::parse(&text).map(|token| token.kid), Ok("k1".to_owned()), "{alg}");
        }
        for alg in ["none", "HS256", "ES256", "PS256"] {
            let text = token(serde_json::json!({"alg": alg, "kid": "k1"}), claims.clone());
            assert_eq!(SignedToken::parse(&text).err(), Some(TokenRefusal::Algorithm(alg.into())), "{alg}");
        }
        for header in [
            serde_json::json!({"alg": "RS256"}),
            serde_json::json!({"alg": "RS256", "kid": ""}),
            serde_json::json!({"alg": "RS256", "kid": "../../accounts"}),
        ] {
            let text = token(header.clone(), claims.clone());
            assert_eq!(SignedToken::parse(&text).err(), Some(TokenRefusal::Malformed("kid")), "{header}");
        }
        for text in ["", "abc", "a.b", "a.b.c", "e30.e30.!!"] {
            assert!(matches!(SignedToken::parse(text), Err(TokenRefusal::Malformed(_))), "{text}");
        }
    }

    #[test]
    fn claims_give_the_account_the_expiry_and_a_complete_as() {
        let header = serde_json::json!({"alg": "RS256", "kid": "k1"});
        let read = |claims: serde_json::Value| {
            let text = token(header.clone(), claims);
            SignedToken::parse(&text).expect("a token").claims(1_000)
        };
        assert_eq!(read(serde_json::json!({"account_id": ACCOUNT, "exp": 999})), Err(TokenRefusal::Expired));
        assert_eq!(read(serde_json::json!({"account_id": ACCOUNT, "exp": 1_000})), Err(TokenRefusal::Expired));
        let valid = read(serde_json::json!({"account_id": ACCOUNT, "exp": 1_001})).expect("valid");
        assert_eq!((valid.account_id.as_str(), valid.exp), (ACCOUNT, Some(1_001)));
        assert_eq!(valid.acting_as(), Ok(None));
        assert!(read(serde_json::json!({"account_id": ACCOUNT})).is_ok(), "no exp: no expiry");
        assert!(read(serde_json::json!({"account_id": "not-an-id"})).is_err());
        assert!(read(serde_json::json!({"exp": 2_000})).is_err());

        let other = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";
        let acting = |acting: serde_json::Value| {
            read(serde_json::json!({"account_id": ACCOUNT, "as": acting})).expect("valid").acting_as()
        };
        assert_eq!(
            acting(serde_json::json!({"account_id": other, "owner_id": "u"})),
            Ok(Some(other.parse().expect("an id")))
        );
        assert_eq!(acting(serde_json::json!({"account_id": other})), Ok(None), "ignored without owner_id");
        assert_eq!(acting(serde_json::json!({"owner_id": "u"})), Ok(None));
        assert_eq!(
            acting(serde_json::json!({"account_id": "x", "owner_id": "u"})),
            Err(TokenRefusal::Malformed("as.account_id"))
        );
    }
}
