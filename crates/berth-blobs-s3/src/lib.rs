//! The registry's blob store in an S3-compatible bucket, through the object_store crate:
//! the path for hosts that share storage (`berth up --registry-store s3://BUCKET/PREFIX`).
//!
//! - Blobs are objects `PREFIX/blobs/{algorithm}/{hex}`. An object appears whole when
//!   its PUT (or multipart upload) completes, so a reader never sees part of one.
//! - Upload sessions stay files on this host (`FsBlobs`), so uploads stream to local disk,
//!   resume after a restart and are verified before anything reaches the bucket. A
//!   verified upload is then copied to the bucket, and only then acknowledged.
//! - Every write of a blob is a PUT, also of bytes already there: its LastModified is
//!   the "written or reused" time garbage collection reads.
//! - Garbage collection cannot rename in a bucket. Setting a blob aside only marks it
//!   here; the collector's final check (a HEAD for its LastModified) and the deletion run
//!   while `Registry::blob_writes` keeps every write that makes a blob live out, a batch
//!   of blobs at a time, so pushes wait for one batch's requests, not all of them.
//!
//! object_store's requests run on a small runtime of this store's own, so the
//! registry's synchronous calls can wait for them from any thread.

mod connector;

use berth_http::Body;
use berth_registry::blobs::{BoxFuture, CommitError};
use berth_registry::{BlobStore, Digest, FsBlobs};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use std::collections::HashSet;
use std::future::Future;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Uploads above this size go to the bucket as a multipart upload of parts this large.
const PART: usize = 16 << 20;
/// Parts in flight at once during a multipart upload (each is held in memory).
const PARTS_IN_FLIGHT: usize = 2;

/// Where the bucket is and how to reach it.
#[derive(Debug, Clone)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix, without leading or trailing slash; may be empty.
    pub prefix: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:4566`); AWS's own when None.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Location {
    /// Parse `s3://BUCKET[/PREFIX]`.
    pub fn parse_url(url: &str) -> Option<(String, String)> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| (bucket.to_string(), prefix.trim_matches('/').to_string()))
    }
}

pub struct S3Blobs {
    store: Arc<AmazonS3>,
    /// `PREFIX/` or empty.
    prefix: String,
    staging: FsBlobs,
    runtime: Option<tokio::runtime::Runtime>,
    /// Blobs the collector has set aside and not yet restored or purged.
    aside: Mutex<HashSet<Digest>>,
}

fn to_io(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        e => io::Error::other(e),
    }
}

impl S3Blobs {
    /// Connect to the bucket (checking that it answers) and keep upload sessions under
    /// `staging` on this host.
    pub fn open(at: &S3Location, staging: &Path) -> io::Result<S3Blobs> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&at.bucket)
            .with_region(&at.region)
            .with_access_key_id(&at.access_key_id)
            .with_secret_access_key(&at.secret_access_key)
            .with_http_connector(connector::Connector)
            // A registry request waits for these: give up in seconds, not object_store's
            // default of minutes, so an unreachable bucket fails a push (or the start).
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(15),
                ..Default::default()
            });
        if let Some(e) = &at.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        let store = Arc::new(b.build().map_err(to_io)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("berth-blobs-s3")
            .enable_all()
            .build()?;
        let prefix = match at.prefix.as_str() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let blobs = S3Blobs {
            store,
            prefix,
            staging: FsBlobs::open(staging)?,
            runtime: Some(runtime),
            aside: Mutex::new(HashSet::new()),
        };
        // A wrong bucket, endpoint or key should stop the start, not the first push.
        let (store, probe) = (blobs.store.clone(), blobs.key_of("blobs"));
        blobs
            .run(async move { store.list(Some(&probe)).next().await.transpose() })
            .map_err(|e| io::Error::other(format!("bucket {}: {e}", at.bucket)))?;
        Ok(blobs)
    }

    fn key_of(&self, rest: &str) -> Key {
        Key::from(format!("{}{rest}", self.prefix))
    }

    fn key(&self, d: &Digest) -> Key {
        self.key_of(&format!("blobs/{}/{}", d.algorithm.name(), d.hex))
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("runtime lives as long as the store")
    }

    /// Run a request on this store's runtime and wait for it.
    fn run<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime().spawn(async move {
            let _ = tx.send(f.await);
        });
        berth_http::blocking(|| rx.recv().expect("the store's runtime ran the request"))
    }

    fn head(&self, d: &Digest) -> io::Result<object_store::ObjectMeta> {
        let (store, key) = (self.store.clone(), self.key(d));
        self.run(async move { store.head(&key).await })
            .map_err(to_io)
    }

    fn unmark(&self, d: &Digest) {
        self.aside.lock().expect("aside lock").remove(d);
    }
}

impl Drop for S3Blobs {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which async code may not do.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Copy a verified upload's file to `key`: one PUT, or a multipart upload when large.
async fn put_file(store: &AmazonS3, key: &Key, path: &Path, size: u64) -> io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    if size <= PART as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes)?;
        store
            .put(key, PutPayload::from(bytes))
            .await
            .map_err(to_io)?;
        return Ok(());
    }
    let upload = store.put_multipart(key).await.map_err(to_io)?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = w.abort().await;
                return Err(e);
            }
        };
        if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
            let _ = w.abort().await;
            return Err(to_io(e));
        }
        w.write(&buf[..n]);
    }
    w.finish().await.map_err(to_io)?;
    Ok(())
}

/// An object's LastModified in seconds since the epoch: when its bytes were last written
/// or reused (every write of a blob is a PUT).
fn written_at(m: &object_store::ObjectMeta) -> f64 {
    m.last_modified.timestamp_millis() as f64 / 1000.0
}

/// A response body fed by the task that reads the object.
struct ChannelBody(tokio::sync::mpsc::Receiver<io::Result<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(hyper::body::Frame::data)))
    }
}

impl BlobStore for S3Blobs {
    fn stat(&self, digest: &Digest) -> Option<u64> {
        match self.head(digest) {
            Ok(m) => Some(m.size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(%digest, error = %e, "blob store: HEAD failed");
                None
            }
        }
    }

    fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        let (store, key) = (self.store.clone(), self.key(digest));
        let bytes = self
            .run(async move { store.get(&key).await?.bytes().await })
            .map_err(to_io)?;
        Ok(bytes.to_vec())
    }

    fn open(&self, digest: &Digest, start: u64, len: u64) -> BoxFuture<io::Result<Body>> {
        use http_body_util::BodyExt;
        if len == 0 {
            return Box::pin(async { Ok(berth_http::empty()) });
        }
        let (store, key) = (self.store.clone(), self.key(digest));
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        self.runtime().spawn(async move {
            let options = GetOptions {
                range: Some((start..start + len).into()),
                ..Default::default()
            };
            match store.get_opts(&key, options).await {
                Err(e) => {
                    let _ = opened_tx.send(Err(to_io(e)));
                }
                Ok(r) => {
                    let _ = opened_tx.send(Ok(()));
                    let mut chunks = r.into_stream();
                    while let Some(chunk) = chunks.next().await {
                        if tx.send(chunk.map_err(to_io)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Box::pin(async move {
            opened
                .await
                .map_err(|_| io::Error::other("blob store runtime stopped"))??;
            Ok(ChannelBody(rx).boxed())
        })
    }

    fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        let (store, key) = (self.store.clone(), self.key(digest));
        let payload = PutPayload::from(bytes.to_vec());
        self.run(async move { store.put(&key, payload).await })
            .map_err(to_io)?;
        self.unmark(digest);
        Ok(())
    }

    fn begin_upload(&self, meta: &str) -> io::Result<String> {
        self.staging.begin_upload(meta)
    }

    fn upload_path(&self, id: &str) -> Option<(std::path::PathBuf, String)> {
        self.staging.upload_path(id)
    }

    fn commit_upload(
        &self,
        id: &str,
        digest: &Digest,
        known: Option<Digest>,
    ) -> Result<u64, CommitError> {
        let (data, size) = self.staging.verified_upload(id, digest, known)?;
        let (store, key) = (self.store.clone(), self.key(digest));
        self.run(async move { put_file(&store, &key, &data, size).await })
            .map_err(CommitError::Io)?;
        self.unmark(digest);
        self.staging.discard_upload(id);
        Ok(size)
    }

    fn cancel_upload(&self, id: &str) -> io::Result<()> {
        self.staging.cancel_upload(id)
    }

    fn delete(&self, digest: &Digest) -> io::Result<()> {
        let (store, key) = (self.store.clone(), self.key(digest));
        match self.run(async move { store.delete(&key).await }) {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(to_io(e)),
        }
    }

    fn uploads(&self) -> Vec<(String, String)> {
        self.staging.uploads()
    }

    fn list(&self) -> Vec<(Digest, f64)> {
        let (store, root) = (self.store.clone(), self.key_of("blobs"));
        let listed = self.run(async move {
            store
                .list(Some(&root))
                .try_collect::<Vec<object_store::ObjectMeta>>()
                .await
        });
        let metas = match listed {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "blob store: listing failed");
                return vec![];
            }
        };
        metas
            .into_iter()
            .filter_map(|m| {
                let mut parts = m.location.parts().collect::<Vec<_>>().into_iter().rev();
                let hex = parts.next()?;
                let algorithm = parts.next()?;
                let d = Digest::parse(&format!("{}:{}", algorithm.as_ref(), hex.as_ref()))?;
                Some((d, written_at(&m)))
            })
            .collect()
    }

    fn quarantine(&self, digest: &Digest) -> io::Result<()> {
        self.aside
            .lock()
            .expect("aside lock")
            .insert(digest.clone());
        Ok(())
    }

    fn quarantined_at(&self, digest: &Digest) -> Option<f64> {
        if !self.aside.lock().expect("aside lock").contains(digest) {
            return None;
        }
        match self.head(digest) {
            Ok(m) => Some(written_at(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.unmark(digest);
                None
            }
            // Unknown: count it as just written, so this collection keeps it.
            Err(_) => Some(f64::INFINITY),
        }
    }

    fn restore(&self, digest: &Digest) -> io::Result<()> {
        self.unmark(digest);
        Ok(())
    }

    fn purge(&self, digest: &Digest) -> io::Result<()> {
        self.delete(digest)?;
        self.unmark(digest);
        Ok(())
    }
}
