//! The SSRF guard (docs/kazoo.md#target-checks). It sits where addresses are chosen: the resolver
//! drops restricted addresses from what a name resolves to (and refuses the name when nothing is
//! left), so the connector only ever connects to checked addresses; literal addresses in the URL,
//! which skip resolution, are checked before connecting. Re-resolution (DNS rebinding) cannot
//! slip past it because every new connection goes through the same resolver.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;
use webhooks_model::webhook::is_restricted_address;

/// Errors boxed the way hyper's connectors pass them.
pub(super) type BoxError = Box<dyn StdError + Send + Sync>;

/// A target refused by the SSRF guard.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, which is not a public address")]
pub struct BlockedTarget {
    /// The host of the URL.
    pub(super) host: String,
    /// The (first) refused address.
    pub(super) address: IpAddr,
}

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub(super) enum ResolveError {
    /// The lookup failed (unknown name, resolver unreachable).
    #[error("nxdomain: {host}")]
    Lookup {
        /// The name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The name has no addresses.
    #[error("nxdomain: {0} has no address")]
    NoAddress(String),
}

/// Resolves with the system resolver, then drops restricted addresses unless private targets are
/// allowed.
#[derive(Clone)]
pub(super) struct GuardedResolver {
    /// Whether restricted addresses are allowed.
    pub(super) allow_private_targets: bool,
}

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private_targets = self.allow_private_targets;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: the connector sets the URL's port on each address.
            let looked_up = tokio::net::lookup_host((host.as_str(), 0)).await.map(Iterator::collect::<Vec<_>>);
            let addresses: Vec<SocketAddr> = match looked_up {
                Ok(addresses) => addresses,
                Err(source) => return Err(ResolveError::Lookup { host, source }.into()),
            };
            if addresses.is_empty() {
                return Err(ResolveError::NoAddress(host).into());
            }
            if allow_private_targets {
                return Ok(addresses.into_iter());
            }
            let (public, restricted): (Vec<_>, Vec<_>) =
                addresses.into_iter().partition(|address| !is_restricted_address(address.ip()));
            match (public.is_empty(), restricted.first()) {
                (true, Some(refused)) => Err(BlockedTarget { host, address: refused.ip() }.into()),
                _ => Ok(public.into_iter()),
            }
        })
    }
}

/// The TCP connector of callouts: hyper's, resolving through [`GuardedResolver`], with literal
/// addresses checked first.
#[derive(Clone)]
pub(super) struct GuardedConnector {
    /// hyper's connector (timeouts, happy eyeballs, `TCP_NODELAY`).
    pub(super) inner: HttpConnector<GuardedResolver>,
    /// Whether restricted addresses are allowed.
    pub(super) allow_private_targets: bool,
}

impl Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if !self.allow_private_targets
            && let Some(host) = uri.host()
            && let Ok(address) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
            && is_restricted_address(address)
        {
            let blocked = BlockedTarget { host: host.to_owned(), address };
            return Box::pin(std::future::ready(Err(blocked.into())));
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}
