//! Pulling an image from an OCI distribution registry into the node's content store.
//!
//! Registries on loopback are spoken to over plain HTTP, every other over HTTPS (unless
//! [`PullerOptions::schemes`] says otherwise), with basic credentials or the bearer tokens
//! of the distribution token protocol (see `auth`); redirects (blob downloads from object
//! storage) are followed to HTTP or HTTPS.
//!
//! Every byte is verified: the manifest against the digest it was asked by (or recorded
//! under), each blob against its descriptor while it streams to a temporary file, which
//! is renamed into place only when it matches. Each layer is unpacked once, into
//! `layers/<hex>`, and concurrent pulls of the same blob or layer wait for one another
//! instead of fetching twice.

use crate::auth::{self, TokenCache};
use crate::transport::{self, HttpClient, Scheme};
use crate::unpack::{unpack_layer, UnpackError};
use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

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
    /// TLS failed: the registry's certificate is not trusted or not for its name, or the
    /// peer does not speak TLS.
    Tls(String),
    /// The token service refused the credentials, or the registry refused its token.
    Auth(String),
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
            PullError::Tls(m) => write!(f, "{m}"),
            PullError::Auth(m) => write!(f, "registry authentication failed: {m}"),
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

/// How a [`Puller`] reaches registries.
#[derive(Debug, Clone, Default)]
pub struct PullerOptions {
    /// A PEM file of CA certificates trusted, besides the system's, for HTTPS registries,
    /// their token services and the storage their blob downloads redirect to.
    pub extra_ca: Option<PathBuf>,
    /// The scheme of particular registries, by `host:port` as image names write it (or by
    /// host alone, for every port), instead of the default: plain HTTP for a registry on
    /// loopback (`localhost`, `*.localhost`, 127.0.0.0/8, `::1`), HTTPS for every other.
    /// For a TLS registry on loopback, or a plain-HTTP one on the network.
    pub schemes: HashMap<String, Scheme>,
}

pub struct Puller {
    store: Arc<ContentStore>,
    client: HttpClient,
    schemes: HashMap<String, Scheme>,
    tokens: TokenCache,
    /// One lock per blob or layer digest being fetched or unpacked.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// One pull's view of its registry: where the repository is and which credentials to use.
struct Session<'a> {
    image: &'a ImageRef,
    /// `scheme://registry/v2/repository`
    base: String,
    /// `Basic ...`, from the credentials the pull was given.
    basic: Option<String>,
    /// Whose tokens these are (a digest of the credentials; empty without any).
    identity: String,
    /// The scope a pull needs, asked for before any challenge names one.
    scope: String,
}

impl Puller {
    /// A puller storing into `store`. Fails if `options.extra_ca` cannot be read or holds
    /// no certificate.
    pub fn new(store: Arc<ContentStore>, options: PullerOptions) -> std::io::Result<Puller> {
        Ok(Puller {
            store,
            client: transport::client(options.extra_ca.as_deref())?,
            schemes: options.schemes,
            tokens: TokenCache::default(),
            inflight: Mutex::new(HashMap::new()),
        })
    }

    /// The scheme `registry` is spoken to with.
    pub fn scheme_for(&self, registry: &str) -> Scheme {
        self.schemes
            .get(registry)
            .or_else(|| self.schemes.get(&transport::registry_host(registry)))
            .copied()
            .unwrap_or_else(|| transport::default_scheme(registry))
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
        let basic = basic.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let session = Session {
            image,
            base: format!(
                "{}://{}/v2/{}",
                self.scheme_for(&image.registry).as_str(),
                image.registry,
                image.repository
            ),
            identity: basic
                .as_ref()
                .map(|b| hex::encode(Sha256::digest(b.as_bytes())))
                .unwrap_or_default(),
            basic,
            scope: format!("repository:{}:pull", image.repository),
        };
        let s = &session;
        let (mut digest, mut manifest) = self.manifest(s, &image.reference).await?;
        if is_index(&manifest) {
            let child = pick_platform(&manifest)?;
            let (d, m) = self.manifest(s, &child).await?;
            digest = d;
            manifest = m;
        }
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .ok_or_else(|| PullError::Unsupported("manifest has no config".into()))?;
        let config_path = self.blob(s, config_digest).await?;
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
            let blob = self.blob(s, d).await?;
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

    /// GET a registry URL for `s`: with its basic credentials or a bearer token already
    /// held, and on a `Bearer` challenge with a token from the challenge's realm.
    async fn get(
        &self,
        s: &Session<'_>,
        url: &str,
        accept: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, PullError> {
        let registry = &s.image.registry;
        let mut authz = match self.tokens.get(registry, &s.scope, &s.identity) {
            Some(t) => Some(format!("Bearer {t}")),
            None => s.basic.clone(),
        };
        // The realm and scope of a token just fetched: if the registry refuses that one
        // too, give up.
        let mut fresh: Option<(String, String)> = None;
        loop {
            let resp = self.send(url, accept, authz.as_deref()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if let Some((realm, scope)) = fresh {
                self.tokens.forget(registry, &scope, &s.identity);
                let why = match Self::fail(resp).await {
                    PullError::Registry { message, .. } => message,
                    other => other.to_string(),
                };
                return Err(PullError::Auth(format!(
                    "{registry} refused the token from {realm}: {why}"
                )));
            }
            // A basic challenge: the caller reports the 401.
            let Some(challenge) = auth::bearer_challenge(resp.headers()) else {
                return Ok(resp);
            };
            let scope = challenge.scope.clone().unwrap_or_else(|| s.scope.clone());
            let sent = authz.as_deref().and_then(|a| a.strip_prefix("Bearer "));
            let token = match self.tokens.get(registry, &scope, &s.identity) {
                Some(t) if Some(t.as_str()) != sent => t,
                _ => {
                    // Refused or none yet: ask the realm for a fresh one.
                    self.tokens.forget(registry, &scope, &s.identity);
                    let token = self.fetch_token(s, &challenge, &scope).await?;
                    fresh = Some((challenge.realm.clone(), scope));
                    token
                }
            };
            authz = Some(format!("Bearer {token}"));
        }
    }

    /// A token from the realm of `challenge` for `scope`, kept for the next requests.
    async fn fetch_token(
        &self,
        s: &Session<'_>,
        challenge: &auth::Challenge,
        scope: &str,
    ) -> Result<String, PullError> {
        let realm = &challenge.realm;
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(PullError::Auth(format!(
                "{} names a token service that is not an HTTP(S) URL: {realm:?}",
                s.image.registry
            )));
        }
        // (The serializer is not Send: it must not live across an await.)
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(service) = &challenge.service {
                q.append_pair("service", service);
            }
            for one in scope.split(' ').filter(|x| !x.is_empty()) {
                q.append_pair("scope", one);
            }
            q.finish()
        };
        let mut url = realm.clone();
        if !query.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&query);
        }
        let asked = std::time::Instant::now();
        let resp = self.send(&url, None, s.basic.as_deref()).await?;
        let status = resp.status();
        if status != StatusCode::OK {
            let why = match Self::fail(resp).await {
                PullError::Registry { message, .. } if !message.is_empty() => {
                    format!(": {message}")
                }
                _ => String::new(),
            };
            let creds = if s.basic.is_some() {
                "with the credentials given"
            } else {
                "without credentials"
            };
            return Err(PullError::Auth(format!(
                "the token service {realm} answered {} {creds} for {scope}{why}",
                status.as_u16()
            )));
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| PullError::Unreachable(format!("{realm}: {e}")))?
            .to_bytes();
        let (token, lifetime) = auth::parse_token_response(&body)
            .map_err(|e| PullError::Auth(format!("the token service {realm}: {e}")))?;
        self.tokens.put(
            &s.image.registry,
            scope,
            &s.identity,
            &token,
            asked,
            lifetime,
        );
        Ok(token)
    }

    /// One GET, following redirects (registries backed by object storage redirect blob
    /// downloads, to HTTP or HTTPS). Credentials go only to the origin they were meant for.
    async fn send(
        &self,
        url: &str,
        accept: Option<&str>,
        authz: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, PullError> {
        let mut url = url.to_string();
        let mut authz = authz;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = Request::get(&url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            let req = req
                .body(Empty::new())
                .map_err(|e| PullError::Unsupported(format!("URL {url:?}: {e}")))?;
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| transport::request_error(&url, &e))?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let next = transport::resolve_location(&url, location)
                .filter(|n| n.starts_with("http://") || n.starts_with("https://"))
                .ok_or_else(|| {
                    PullError::Unsupported(format!("redirect from {url} to {location:?}"))
                })?;
            if transport::origin(&next) != transport::origin(&url) {
                authz = None;
            }
            url = next;
        }
        Err(PullError::Unsupported(format!(
            "more than {MAX_REDIRECTS} redirects, the last to {url}"
        )))
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
        s: &Session<'_>,
        reference: &str,
    ) -> Result<(String, Value), PullError> {
        let url = format!("{}/manifests/{reference}", s.base);
        let resp = self.get(s, &url, Some(ACCEPT)).await?;
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
    async fn blob(&self, s: &Session<'_>, digest: &str) -> Result<PathBuf, PullError> {
        let dest = self
            .store
            .blob_path(digest)
            .ok_or_else(|| PullError::Unsupported(format!("digest {digest:?}")))?;
        let lock = self.lock_for(digest);
        let _held = lock.lock().await;
        if tokio::fs::metadata(&dest).await.is_ok() {
            return Ok(dest);
        }
        let url = format!("{}/blobs/{digest}", s.base);
        let resp = self.get(s, &url, None).await?;
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
    /// The node pulls on tokio's worker threads.
    #[allow(dead_code)]
    fn pulls_are_send(p: &Puller, image: &ImageRef) {
        fn send<T: Send>(_: T) {}
        send(p.pull(image, Some(("AWS", "token"))));
    }

    #[test]
    fn scheme_policy_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let options = PullerOptions {
            schemes: HashMap::from([
                ("localhost:5443".to_string(), Scheme::Https),
                ("registry.lan".to_string(), Scheme::Http),
            ]),
            ..Default::default()
        };
        let p = Puller::new(Arc::new(ContentStore::open(dir.path()).unwrap()), options).unwrap();
        assert_eq!(p.scheme_for("localhost:5443"), Scheme::Https);
        assert_eq!(p.scheme_for("localhost:5000"), Scheme::Http);
        assert_eq!(
            p.scheme_for("registry.lan:5000"),
            Scheme::Http,
            "by host alone"
        );
        assert_eq!(p.scheme_for("Registry.LAN"), Scheme::Http);
        assert_eq!(p.scheme_for("registry.example"), Scheme::Https);
        assert_eq!(p.scheme_for("127.0.0.1:4566"), Scheme::Http);
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
