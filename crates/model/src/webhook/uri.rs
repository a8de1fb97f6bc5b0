//! A hook's callback URL: the API's check of what a client writes (docs/kazoo.md#target-checks),
//! and, as deliveries carry it, the text as stored and the URI a callout is made to, parsed once
//! with the `http` crate (the HTTP client's own type, so the request is built from it without
//! parsing again).

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use http::Uri;
use http::uri::PathAndQuery;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::{Host, Url};

use super::address::is_restricted_address;
use crate::form;

/// Host names refused as `uri` hosts whatever the configuration (`kazoo_web.client.blacklist.hosts`).
pub const BLACKLISTED_HOSTS: &[&str] = &["localhost"];

/// Why a `uri` is refused: reported to clients as Crossbar's `invalid client URL`, with this text
/// as the `cause`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCallbackUri {
    /// Not an absolute URL.
    #[error("not an absolute URL: {0}")]
    Unparsable(#[from] url::ParseError),
    /// Whitespace, control characters or backslashes, which other URL parsers would read
    /// differently.
    #[error("contains whitespace, control characters or backslashes")]
    IllegalCharacters,
    /// Only `http` and `https` are called.
    #[error("scheme '{0}' is not http or https")]
    Scheme(String),
    /// User name or password in the URL: they would be stored and shown in clear.
    #[error("carries credentials")]
    Credentials,
    /// No host to call.
    #[error("has no host")]
    NoHost,
    /// Not written `scheme://host...`.
    #[error("is not written scheme://host")]
    NotHierarchical,
    /// A host name on the blacklist.
    #[error("host '{0}' is blacklisted")]
    BlacklistedHost(String),
    /// A literal address in a range [`is_restricted_address`] refuses.
    #[error("address {0} is not a public address")]
    RestrictedAddress(IpAddr),
}

/// Checks a hook `uri`: absolute `http`/`https`, no credentials, host not blacklisted, and no
/// literal restricted address unless `allow_private_targets`. The WHATWG parser reads every
/// IPv4 spelling (`2130706433`, `0x7f.0.0.1`, `0177.0.0.1`, `127.1`, percent-encoded, full-width
/// digits) as the address it means, so each is judged by that address. Names are not resolved
/// here; the dispatcher checks every address it actually connects to with the same function.
pub fn check_callback_uri(uri: &str, allow_private_targets: bool) -> Result<Url, InvalidCallbackUri> {
    // The URL parser silently strips or skips whitespace and control characters, and reads a
    // backslash as a slash; refusing them keeps stored and called URL equal.
    if uri.chars().any(|character| character.is_whitespace() || character.is_control() || character == '\\') {
        return Err(InvalidCallbackUri::IllegalCharacters);
    }
    let url = Url::parse(uri)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidCallbackUri::Scheme(url.scheme().to_owned()));
    }
    // The parser also finds a host in `http:a`, `http:/a` and `http:///a`; the dispatcher does not.
    let authority = uri.get(url.scheme().len() + 1..).and_then(|rest| rest.strip_prefix("//"));
    if authority.is_none_or(|authority| authority.is_empty() || authority.starts_with('/')) {
        return Err(InvalidCallbackUri::NotHierarchical);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidCallbackUri::Credentials);
    }
    let address = match url.host() {
        None => return Err(InvalidCallbackUri::NoHost),
        Some(Host::Domain(domain)) => {
            // The parser lower-cases names; a trailing dot names the same host.
            let name = domain.trim_end_matches('.');
            // Names under `localhost` are loopback too (resolvers answer them so).
            let blacklisted = BLACKLISTED_HOSTS
                .iter()
                .any(|host| name == *host || name.strip_suffix(host).is_some_and(|parent| parent.ends_with('.')));
            if blacklisted {
                return Err(InvalidCallbackUri::BlacklistedHost(name.to_owned()));
            }
            None
        }
        Some(Host::Ipv4(address)) => Some(IpAddr::V4(address)),
        Some(Host::Ipv6(address)) => Some(IpAddr::V6(address)),
    };
    if let Some(address) = address
        && !allow_private_targets
        && is_restricted_address(address)
    {
        return Err(InvalidCallbackUri::RestrictedAddress(address));
    }
    Ok(url)
}

/// A hook's `uri`: the text as stored, which jobs carry and attempt records show, and the
/// [`CalloutUri`] read from it on first use. Clones share both, so the jobs of one hook parse its
/// URI once between them.
#[derive(Clone)]
pub struct CallbackUri(Arc<Parsed>);

/// The text and, once asked for, what a callout makes of it.
struct Parsed {
    text: Box<str>,
    /// Boxed: the hooks of the router's index carry the text and never ask.
    callout: OnceLock<Box<Result<CalloutUri, UncallableUri>>>,
}

impl CallbackUri {
    /// The URI written `text`; parsed only when [`CallbackUri::callout`] is first asked.
    pub fn new(text: impl Into<Box<str>>) -> Self {
        Self(Arc::new(Parsed { text: text.into(), callout: OnceLock::new() }))
    }

    /// The text as stored.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// Where a callout goes, or why it cannot be made.
    pub fn callout(&self) -> Result<&CalloutUri, &UncallableUri> {
        self.0.callout.get_or_init(|| Box::new(CalloutUri::parse(&self.0.text))).as_ref().as_ref()
    }
}

impl From<&str> for CallbackUri {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for CallbackUri {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl PartialEq for CallbackUri {
    fn eq(&self, other: &CallbackUri) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for CallbackUri {}

impl fmt::Debug for CallbackUri {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(formatter)
    }
}

impl fmt::Display for CallbackUri {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Serialize for CallbackUri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Any string: one that cannot be called is still delivered, as a failed attempt.
impl<'de> Deserialize<'de> for CallbackUri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

/// A URI a callout can be made to: absolute, `http` or `https`.
#[derive(Debug, Clone, PartialEq)]
pub struct CalloutUri {
    uri: Uri,
    /// `scheme://authority`: what the callouts to one host share (its connection limits and pace).
    origin: Arc<str>,
}

impl CalloutUri {
    /// Reads `text` as the HTTP client reads it.
    fn parse(text: &str) -> Result<Self, UncallableUri> {
        let uri = text.parse::<Uri>().map_err(|error| UncallableUri(error.to_string()))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(UncallableUri("not an absolute URL".to_owned()));
        };
        if !matches!(scheme, "http" | "https") {
            return Err(UncallableUri("scheme is not http or https".to_owned()));
        }
        let origin = format!("{scheme}://{authority}").into();
        Ok(Self { uri, origin })
    }

    /// The URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `scheme://authority`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The same URI with the form-encoded `query` appended to its own query (a GET's payload),
    /// as [`form::join_query`] appends it to the text.
    pub fn with_query(&self, query: &str) -> Result<Self, UncallableUri> {
        if query.is_empty() {
            return Ok(self.clone());
        }
        let own = self.uri.path_and_query().map_or("", PathAndQuery::as_str);
        let joined =
            PathAndQuery::try_from(form::join_query(own, query)).map_err(|error| UncallableUri(error.to_string()))?;
        let mut parts = self.uri.clone().into_parts();
        parts.path_and_query = Some(joined);
        let uri = Uri::from_parts(parts).map_err(|error| UncallableUri(error.to_string()))?;
        Ok(Self { uri, origin: self.origin.clone() })
    }
}

/// Why a hook's URI cannot be called. The API stores none such; documents written before it
/// checked URIs as it does now may hold one, and each callout of it fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid uri: {0}")]
pub struct UncallableUri(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_is_parsed_once_and_keeps_its_text() {
        let uri = CallbackUri::from("HTTPS://Hooks.example.com:8443/in?a=1#top");
        let callout = uri.callout().expect("callable");
        assert_eq!(callout.origin(), "https://Hooks.example.com:8443");
        assert_eq!(callout.uri().path_and_query().map(PathAndQuery::as_str), Some("/in?a=1"));
        assert!(std::ptr::eq(callout, uri.clone().callout().expect("callable")), "clones share the parse");
        assert_eq!(uri.as_str(), "HTTPS://Hooks.example.com:8443/in?a=1#top");
        assert_eq!(serde_json::to_value(&uri).expect("JSON"), "HTTPS://Hooks.example.com:8443/in?a=1#top");
    }

    #[test]
    fn uris_a_callout_cannot_reach_say_why() {
        let why = |text: &str| CallbackUri::from(text).callout().map(|_| ()).map_err(ToString::to_string);
        assert_eq!(why("https://exämple.com/"), Err("invalid uri: invalid uri character".to_owned()));
        assert_eq!(why("/relative"), Err("invalid uri: not an absolute URL".to_owned()));
        assert_eq!(why("ftp://files.example.com/"), Err("invalid uri: scheme is not http or https".to_owned()));
        assert_eq!(why(""), Err("invalid uri: empty string".to_owned()));
        let read: CallbackUri = serde_json::from_str(r#""not a uri""#).expect("any string");
        assert!(read.callout().is_err());
    }

    #[test]
    fn a_query_joins_the_uris_own_as_it_joins_the_text() {
        for (text, expected) in [
            ("https://x.example.com/in", "https://x.example.com/in?a=1&b[c]=2"),
            ("https://x.example.com/in?k=v", "https://x.example.com/in?k=v&a=1&b[c]=2"),
            ("https://x.example.com/in?", "https://x.example.com/in?a=1&b[c]=2"),
            ("https://x.example.com/in#frag", "https://x.example.com/in?a=1&b[c]=2"),
            ("https://x.example.com", "https://x.example.com/?a=1&b[c]=2"),
        ] {
            let uri = CallbackUri::from(text);
            let joined = uri.callout().expect("callable").with_query("a=1&b[c]=2").expect("a query");
            assert_eq!(joined.uri().to_string(), expected, "{text}");
            let from_text: Uri = form::join_query(text, "a=1&b[c]=2").parse().expect("a URI");
            assert_eq!(joined.uri().to_string(), from_text.to_string(), "{text}");
            assert_eq!(joined.origin(), "https://x.example.com");
        }
        let uri = CallbackUri::from("https://x.example.com/in");
        assert_eq!(
            uri.callout().expect("callable").with_query("").expect("no query").uri().to_string(),
            "https://x.example.com/in"
        );
    }
}
