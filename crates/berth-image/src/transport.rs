//! How the puller reaches registries: which scheme a registry is spoken to with, the HTTP
//! client (plain HTTP and HTTPS verified against the system's CA certificates plus an
//! optional extra bundle), name resolution for `*.localhost`, and turning transport
//! failures into errors that say what went wrong.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

/// How a registry is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Docker's and containerd's rule: plain HTTP for a registry on loopback (`localhost`,
/// `*.localhost`, 127.0.0.0/8, `::1`), HTTPS for every other.
pub fn default_scheme(registry: &str) -> Scheme {
    if is_loopback_host(&registry_host(registry)) {
        Scheme::Http
    } else {
        Scheme::Https
    }
}

/// The host of `host[:port]` (IPv6 literals in brackets), lowercased.
pub(crate) fn registry_host(registry: &str) -> String {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        match registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => registry,
        }
    };
    host.to_ascii_lowercase()
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || is_localhost_subdomain(host)
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Names under `.localhost` are the loopback address (RFC 6761), whether or not this
/// host's resolver knows it (many do not).
fn is_localhost_subdomain(host: &str) -> bool {
    host.to_ascii_lowercase()
        .trim_end_matches('.')
        .ends_with(".localhost")
}

pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector<Resolver>>, Empty<Bytes>>;

/// The client for registries, token services and blob storage: HTTP/1.1, plain or TLS as
/// each URL says, certificates verified against the system's roots plus those in
/// `extra_ca` (PEM); `*.localhost` names resolve here (see `Resolver`).
pub(crate) fn client(extra_ca: Option<&Path>) -> io::Result<HttpClient> {
    let https = berth_http::tls::https(HttpConnector::new_with_resolver(Resolver), extra_ca)?;
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

/// Name resolution for the client: `*.localhost` is 127.0.0.1, every other name goes to
/// the system's resolver. The URL keeps the name, so the Host header and the TLS server
/// name are the ones the image used (Berth's registry reads account and region from it).
#[derive(Clone, Copy)]
pub(crate) struct Resolver;

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_string();
        Box::pin(async move {
            if is_localhost_subdomain(&host) {
                return Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))].into_iter());
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(addrs.into_iter())
        })
    }
}

/// What a failed request means: a TLS failure (an untrusted or mismatched certificate, a
/// peer that does not speak TLS) or an unreachable peer, with every cause in the message.
pub(crate) fn request_error(
    url: &str,
    e: &(dyn std::error::Error + 'static),
) -> crate::pull::PullError {
    use crate::pull::PullError;
    let mut causes: Vec<String> = vec![];
    let mut tls: Option<&rustls::Error> = None;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            tls.get_or_insert(t);
        }
        let text = err.to_string();
        // hyper-util's own layer says only "client error (Connect)".
        if !text.starts_with("client error (") && !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        // An io::Error's source() skips the error it wraps (which may be another
        // io::Error wrapping rustls's): step into it instead.
        cur = match err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    let origin = origin(url).unwrap_or(url);
    match tls {
        Some(t @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)) => {
            PullError::Tls(format!(
                "certificate verification failed for {origin}: {t} (is the registry's CA among the trusted ones?)"
            ))
        }
        Some(t) => PullError::Tls(format!("TLS with {origin} failed: {t}")),
        None if causes.is_empty() => PullError::Unreachable(format!("{url}: {e}")),
        None => PullError::Unreachable(format!("{url}: {}", causes.join(": "))),
    }
}

/// `scheme://authority` of an absolute URL.
pub(crate) fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

/// Where a redirect's `Location` points, from the URL that answered it.
pub(crate) fn resolve_location(base: &str, location: &str) -> Option<String> {
    if location.is_empty() {
        return None;
    }
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    let origin = origin(base)?;
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = &origin[..origin.find("://")?];
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    // Relative to the directory of the current path.
    let path = &base[origin.len()..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    Some(format!("{origin}{dir}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http() {
        for r in [
            "localhost",
            "localhost:4566",
            "LOCALHOST:4566",
            "000000000000.dkr.ecr.eu-west-1.localhost:4566",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert_eq!(default_scheme(r), Scheme::Http, "{r}");
        }
        for r in [
            "registry.example:5000",
            "public.ecr.aws",
            "10.0.0.1:5000",
            "[2001:db8::1]:443",
            "localhost.example",
            "notlocalhost:5000",
        ] {
            assert_eq!(default_scheme(r), Scheme::Https, "{r}");
        }
        assert_eq!(registry_host("[::1]:5000"), "::1");
        assert_eq!(registry_host("Registry.Example"), "registry.example");
    }

    #[test]
    fn localhost_names_resolve_to_loopback() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut r = Resolver;
        let name: Name = "000000000000.dkr.ecr.eu-west-1.localhost".parse().unwrap();
        let addrs: Vec<_> = rt
            .block_on(tower_service::Service::call(&mut r, name))
            .unwrap()
            .collect();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    }

    #[test]
    fn redirect_locations() {
        let base = "https://reg.example:5000/v2/app/blobs/sha256:ab?x=1";
        assert_eq!(origin(base), Some("https://reg.example:5000"));
        assert_eq!(origin("http://h"), Some("http://h"));
        assert_eq!(
            resolve_location(base, "https://s3.example/b?sig=1").as_deref(),
            Some("https://s3.example/b?sig=1")
        );
        assert_eq!(
            resolve_location(base, "/storage/ab").as_deref(),
            Some("https://reg.example:5000/storage/ab")
        );
        assert_eq!(
            resolve_location(base, "//cdn.example/ab").as_deref(),
            Some("https://cdn.example/ab")
        );
        assert_eq!(resolve_location(base, ""), None);
        assert_eq!(
            resolve_location(base, "other").as_deref(),
            Some("https://reg.example:5000/v2/app/blobs/other")
        );
    }
}
