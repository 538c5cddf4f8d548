//! Pulling an image from an OCI distribution registry into the node's content store.
//!
//! Every byte is verified: the manifest against the digest it was asked by (or recorded
//! under), each blob against its descriptor while it streams to a temporary file, which
//! is renamed into place only when it matches. Each layer is unpacked once, into
//! `layers/<hex>`, and concurrent pulls of the same blob or layer wait for one another
//! instead of fetching twice.

use crate::unpack::{unpack_layer, UnpackError};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// `host[:port]/repository[:tag|@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, PullError> {
        let bad = || PullError::InvalidReference(s.to_string());
        let (registry, rest) = s.split_once('/').ok_or_else(bad)?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            // Docker Hub short names need a registry this machine cannot reach.
            return Err(bad());
        }
        let (repository, reference) = if let Some((repo, digest)) = rest.split_once('@') {
            (repo, digest.to_string())
        } else {
            match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag.to_string()),
                _ => (rest, "latest".to_string()),
            }
        };
        if repository.is_empty() || reference.is_empty() {
            return Err(bad());
        }
        Ok(ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            reference,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.reference.contains(':') {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

#[derive(Debug)]
pub enum PullError {
    InvalidReference(String),
    /// The registry could not be reached.
    Unreachable(String),
    /// The registry answered with an error (not found, denied, ...).
    Registry {
        status: u16,
        message: String,
    },
    /// Content did not match its digest.
    DigestMismatch {
        expected: String,
        actual: String,
    },
    /// The manifest or config is not one Berth can run.
    Unsupported(String),
    Unpack(UnpackError),
    Io(std::io::Error),
}

impl fmt::Display for PullError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullError::InvalidReference(r) => write!(f, "invalid image reference {r:?}"),
            PullError::Unreachable(m) => write!(f, "registry unreachable: {m}"),
            PullError::Registry { status, message } => {
                write!(f, "registry answered {status}: {message}")
            }
            PullError::DigestMismatch { expected, actual } => {
                write!(f, "content digest {actual} does not match {expected}")
            }
            PullError::Unsupported(m) => write!(f, "unsupported image: {m}"),
            PullError::Unpack(e) => write!(f, "{e}"),
            PullError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PullError {}

impl From<std::io::Error> for PullError {
    fn from(e: std::io::Error) -> Self {
        PullError::Io(e)
    }
}

/// The node's verified blobs and unpacked layers.
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    pub fn open(root: &Path) -> std::io::Result<ContentStore> {
        for d in ["blobs/sha256", "layers", "tmp"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }

    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = sha256_hex(digest)?;
        Some(self.root.join("blobs/sha256").join(hex))
    }

    pub fn layer_path(&self, digest: &str) -> Option<PathBuf> {
        Some(self.root.join("layers").join(sha256_hex(digest)?))
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp").join(uuid::Uuid::new_v4().to_string())
    }
}

/// The hex of a well-formed `sha256:` digest (the only algorithm images use in practice).
fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// A pulled image: what the runtime needs to build a container's root filesystem.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub manifest_digest: String,
    pub config: Value,
    /// Unpacked layers, lowest first.
    pub layers: Vec<PathBuf>,
}

pub struct Puller {
    store: Arc<ContentStore>,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// One lock per blob or layer digest being fetched or unpacked.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Puller {
    pub fn new(store: Arc<ContentStore>) -> Puller {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Puller {
            store,
            client,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inflight
            .lock()
            .expect("inflight lock")
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// Pull `image` (with basic credentials, e.g. `AWS` and an ECR token) for this
    /// machine's platform, and unpack its layers.
    pub async fn pull(
        &self,
        image: &ImageRef,
        basic: Option<(&str, &str)>,
    ) -> Result<Pulled, PullError> {
        let auth = basic.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let auth = auth.as_deref();
        let (mut digest, mut manifest) = self.manifest(image, &image.reference, auth).await?;
        if is_index(&manifest) {
            let child = pick_platform(&manifest)?;
            let (d, m) = self.manifest(image, &child, auth).await?;
            digest = d;
            manifest = m;
        }
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .ok_or_else(|| PullError::Unsupported("manifest has no config".into()))?;
        let config_path = self.blob(image, config_digest, auth).await?;
        let config: Value = serde_json::from_slice(&tokio::fs::read(&config_path).await?)
            .map_err(|e| PullError::Unsupported(format!("image config is not JSON: {e}")))?;
        let mut layers = vec![];
        let all = manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, l) in all.iter().enumerate() {
            let d = l
                .get("digest")
                .and_then(Value::as_str)
                .ok_or_else(|| PullError::Unsupported("layer without a digest".into()))?;
            let started = std::time::Instant::now();
            let blob = self.blob(image, d, auth).await?;
            layers.push(self.unpacked(d, &blob).await?);
            let size = l.get("size").and_then(Value::as_u64).unwrap_or(0);
            tracing::info!(image = %image, layer = i + 1, of = all.len(), digest = d, bytes = size, ms = started.elapsed().as_millis() as u64, "pulled layer");
        }
        Ok(Pulled {
            manifest_digest: digest,
            config,
            layers,
        })
    }

    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        auth: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, PullError> {
        let (url, host) = loopback_for_localhost(url);
        let mut req = Request::get(&url);
        if let Some(h) = host {
            // Keep the name the image used: the registry reads account and region from it.
            req = req.header("Host", h);
        }
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| PullError::InvalidReference(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| PullError::Unreachable(format!("{url}: {e}")))?;
        if resp.status().is_redirection() {
            // Registries backed by object storage redirect blob downloads.
            let next = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if !next.starts_with("http://") {
                return Err(PullError::Unsupported(format!("redirect to {next:?}")));
            }
            let req = Request::get(&next)
                .body(Empty::new())
                .map_err(|e| PullError::InvalidReference(e.to_string()))?;
            return self
                .client
                .request(req)
                .await
                .map_err(|e| PullError::Unreachable(format!("{next}: {e}")));
        }
        Ok(resp)
    }

    async fn fail(resp: hyper::Response<hyper::body::Incoming>) -> PullError {
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/errors/0/message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        PullError::Registry { status, message }
    }

    /// Fetch and verify a manifest; returns its digest and document.
    async fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
        auth: Option<&str>,
    ) -> Result<(String, Value), PullError> {
        let url = format!(
            "http://{}/v2/{}/manifests/{reference}",
            image.registry, image.repository
        );
        let resp = self.get(&url, Some(ACCEPT), auth).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::fail(resp).await);
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| PullError::Unreachable(e.to_string()))?
            .to_bytes();
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if reference.starts_with("sha256:") && reference != actual {
            return Err(PullError::DigestMismatch {
                expected: reference.to_string(),
                actual,
            });
        }
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| PullError::Unsupported(format!("manifest is not JSON: {e}")))?;
        Ok((actual, doc))
    }

    /// A verified blob in the content store, fetched if missing.
    async fn blob(
        &self,
        image: &ImageRef,
        digest: &str,
        auth: Option<&str>,
    ) -> Result<PathBuf, PullError> {
        let dest = self
            .store
            .blob_path(digest)
            .ok_or_else(|| PullError::Unsupported(format!("digest {digest:?}")))?;
        let lock = self.lock_for(digest);
        let _held = lock.lock().await;
        if tokio::fs::metadata(&dest).await.is_ok() {
            return Ok(dest);
        }
        let url = format!(
            "http://{}/v2/{}/blobs/{digest}",
            image.registry, image.repository
        );
        let resp = self.get(&url, None, auth).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::fail(resp).await);
        }
        let tmp = self.store.tmp();
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut hasher = Sha256::new();
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    PullError::Unreachable(format!("download of {digest} cut short: {e}"))
                })?;
                if let Ok(data) = frame.into_data() {
                    hasher.update(&data);
                    file.write_all(&data).await?;
                }
            }
            let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
            if actual != digest {
                return Err(PullError::DigestMismatch {
                    expected: digest.to_string(),
                    actual,
                });
            }
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &dest).await?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.map(|_| dest)
    }

    /// The layer `digest` unpacked, once, from its verified blob.
    async fn unpacked(&self, digest: &str, blob: &Path) -> Result<PathBuf, PullError> {
        let dest = self
            .store
            .layer_path(digest)
            .ok_or_else(|| PullError::Unsupported(format!("digest {digest:?}")))?;
        let lock = self.lock_for(&format!("layer:{digest}"));
        let _held = lock.lock().await;
        if tokio::fs::metadata(&dest).await.is_ok() {
            return Ok(dest);
        }
        let (tmp, blob, dest2) = (self.store.tmp(), blob.to_path_buf(), dest.clone());
        tokio::task::spawn_blocking(move || -> Result<(), PullError> {
            std::fs::create_dir(&tmp)?;
            let result = std::fs::File::open(&blob)
                .map_err(PullError::Io)
                .and_then(|f| unpack_layer(f, &tmp).map_err(PullError::Unpack));
            match result {
                // Visible only when complete: a rename of the whole directory.
                Ok(stats) => {
                    tracing::debug!(layer = %dest2.display(), entries = stats.entries, "unpacked layer");
                    std::fs::rename(&tmp, &dest2)?;
                    Ok(())
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| PullError::Io(std::io::Error::other(e.to_string())))??;
        Ok(dest)
    }
}

/// Names under `.localhost` are the loopback address (RFC 6761), whether or not this
/// host's resolver knows it (many do not): connect to 127.0.0.1 and send the name as Host.
fn loopback_for_localhost(url: &str) -> (String, Option<String>) {
    let Some(rest) = url.strip_prefix("http://") else {
        return (url.to_string(), None);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (name, port) = match authority.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (authority, None),
    };
    if !name.ends_with(".localhost") {
        return (url.to_string(), None);
    }
    let target = match port {
        Some(p) => format!("http://127.0.0.1:{p}/{path}"),
        None => format!("http://127.0.0.1/{path}"),
    };
    (target, Some(authority.to_string()))
}

fn is_index(m: &Value) -> bool {
    m.get("manifests").is_some()
}

/// The child manifest of an index for this machine (linux and this architecture).
fn pick_platform(index: &Value) -> Result<String, PullError> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    index
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|m| {
            m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                && m.pointer("/platform/architecture").and_then(Value::as_str) == Some(arch)
        })
        .and_then(|m| m.get("digest").and_then(Value::as_str))
        .map(str::to_string)
        .ok_or_else(|| PullError::Unsupported(format!("the image has no linux/{arch} manifest")))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn references() {
        let r = ImageRef::parse("localhost:4566/team/web:v1").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("localhost:4566", "team/web", "v1")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("127.0.0.1:5000/web@{d}")).unwrap();
        assert_eq!(r.reference, d);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/web@{d}"));
        assert_eq!(
            ImageRef::parse("localhost:4566/web").unwrap().reference,
            "latest"
        );
        assert!(ImageRef::parse("busybox").is_err());
        assert!(ImageRef::parse("library/busybox:1").is_err());
    }
    #[test]
    fn localhost_names_go_to_loopback() {
        let (url, host) = loopback_for_localhost(
            "http://000000000000.dkr.ecr.eu-west-1.localhost:4566/v2/web/manifests/v1",
        );
        assert_eq!(url, "http://127.0.0.1:4566/v2/web/manifests/v1");
        assert_eq!(
            host.as_deref(),
            Some("000000000000.dkr.ecr.eu-west-1.localhost:4566")
        );
        assert_eq!(
            loopback_for_localhost("http://localhost:4566/v2/").1,
            None,
            "plain localhost resolves everywhere"
        );
        assert_eq!(
            loopback_for_localhost("http://registry.example:5000/v2/").1,
            None
        );
    }

    #[test]
    fn platform_choice() {
        let idx = serde_json::json!({"manifests": [
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
        ]});
        let want = if std::env::consts::ARCH == "aarch64" {
            "sha256:arm"
        } else {
            "sha256:amd"
        };
        assert_eq!(pick_platform(&idx).unwrap(), want);
        assert!(pick_platform(&serde_json::json!({"manifests": []})).is_err());
    }
}
