//! TLS for Berth's outgoing HTTP clients (the image puller, the S3 blob store): rustls with
//! the ring provider, certificates verified against the system's CA certificates plus an
//! optional extra PEM bundle.

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Wrap `http` so that each URL's scheme decides: plain HTTP, or HTTPS verified against
/// the system's roots and those in `extra_ca`. HTTP/1.1 only, as everywhere in Berth.
pub fn https<R>(
    mut http: HttpConnector<R>,
    extra_ca: Option<&Path>,
) -> io::Result<HttpsConnector<HttpConnector<R>>> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots(extra_ca)?)
    .with_no_client_auth();
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// The system's CA certificates (`SSL_CERT_FILE`/`SSL_CERT_DIR`, else where OpenSSL keeps
/// them, /etc/ssl/certs on Debian) and every certificate in `extra_ca`.
fn roots(extra_ca: Option<&Path>) -> io::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::warn!(error = %e, "cannot read some of the system's CA certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    tracing::debug!(added, ignored, "system CA certificates");
    if let Some(path) = extra_ca {
        let bad = |e: &dyn std::fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("CA certificates {}: {e}", path.display()),
            )
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad(&"no PEM certificate in the file"));
        }
        for c in certs {
            roots.add(c).map_err(|e| bad(&e))?;
        }
    } else if added == 0 {
        tracing::warn!(
            "no CA certificates found on this system: HTTPS peers will fail verification"
        );
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_ca_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = roots(Some(&empty)).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = roots(Some(&missing)).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
