//! The content store: verified blobs, deduplicated across repositories, written
//! atomically (temporary file, fsync, rename, fsync of the directory). Upload sessions
//! live on disk beside it, so an unfinished upload can resume after a restart.

use crate::digest::{hash_file, Digest};
use berth_http::Body;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A future a blob store returns to async callers.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Where blobs live: the filesystem (`FsBlobs`), or an S3-compatible bucket
/// (`berth-blobs-s3`). Upload sessions are always files on this host, so the HTTP layer
/// can append to them and resume them after a restart.
pub trait BlobStore: Send + Sync {
    /// Size of a stored blob.
    fn stat(&self, digest: &Digest) -> Option<u64>;
    /// A stored blob's bytes, whole (manifests and configs: small).
    fn read(&self, digest: &Digest) -> io::Result<Vec<u8>>;
    /// A body streaming `len` bytes of a stored blob from `start`.
    fn open(&self, digest: &Digest, start: u64, len: u64) -> BoxFuture<io::Result<Body>>;
    /// Store `bytes` under their digest (used for manifests).
    fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()>;
    /// Start an upload session; returns its id.
    fn begin_upload(&self, meta: &str) -> io::Result<String>;
    /// The session's data file (appended to by the HTTP layer) and its metadata.
    fn upload_path(&self, id: &str) -> Option<(PathBuf, String)>;
    /// Verify the session's data against `digest` and move it into the store. On a
    /// mismatch the session's data is discarded and nothing is stored. `known` is the
    /// digest of the data as it was written, when the writer hashed it on the way in;
    /// otherwise the data is hashed again here.
    fn commit_upload(
        &self,
        id: &str,
        digest: &Digest,
        known: Option<Digest>,
    ) -> Result<u64, CommitError>;
    fn cancel_upload(&self, id: &str) -> io::Result<()>;
    fn delete(&self, digest: &Digest) -> io::Result<()>;
    /// Ids and metadata of every unfinished upload.
    fn uploads(&self) -> Vec<(String, String)>;
    /// Every stored blob with the time (seconds since the epoch) its bytes were last
    /// written or reused by an upload or a manifest put; garbage collection reads it.
    fn list(&self) -> Vec<(Digest, f64)>;
    /// Move a blob aside so it can no longer be read. `restore` puts it back (unless the
    /// same bytes were stored again meanwhile); `purge` removes it for good.
    fn quarantine(&self, digest: &Digest) -> io::Result<()>;
    /// The write or reuse time a blob set aside carried along; None when it is not aside.
    fn quarantined_at(&self, digest: &Digest) -> Option<f64>;
    fn restore(&self, digest: &Digest) -> io::Result<()>;
    fn purge(&self, digest: &Digest) -> io::Result<()>;
}

#[derive(Debug)]
pub enum CommitError {
    UnknownUpload,
    DigestMismatch { actual: Digest },
    Io(io::Error),
}

pub struct FsBlobs {
    root: PathBuf,
}

fn is_upload_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

/// A file's modification time in seconds since the epoch.
fn modified(m: io::Result<fs::Metadata>) -> Option<f64> {
    let t = m.and_then(|m| m.modified()).ok()?;
    Some(
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    )
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FsBlobs {
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("uploads"))?;
        fs::create_dir_all(root.join("tmp"))?;
        // Temporary files from an interrupted write are never referenced: drop them.
        for e in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(e?.path());
        }
        // Blobs a garbage collection had set aside when the process stopped go back: the
        // next collection decides again.
        let b = FsBlobs {
            root: root.to_path_buf(),
        };
        if let Ok(dir) = fs::read_dir(root.join("gc")) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().replacen('-', ":", 1);
                match Digest::parse(&name) {
                    Some(d) => b.restore(&d)?,
                    None => fs::remove_file(e.path())?,
                }
            }
        }
        fs::create_dir_all(root.join("gc"))?;
        Ok(b)
    }

    /// Check upload `id`'s data against `digest` (`known`: its digest as hashed on the
    /// way in, if it was); returns the data file and its size. On a mismatch the session
    /// is discarded. Other stores keep their upload sessions here and use this too.
    pub fn verified_upload(
        &self,
        id: &str,
        digest: &Digest,
        known: Option<Digest>,
    ) -> Result<(PathBuf, u64), CommitError> {
        let (data, _) = self.upload_path(id).ok_or(CommitError::UnknownUpload)?;
        let actual = match known {
            Some(k) if k.algorithm == digest.algorithm => k,
            _ => hash_file(&data, digest.algorithm).map_err(CommitError::Io)?,
        };
        if &actual != digest {
            self.discard_upload(id);
            return Err(CommitError::DigestMismatch { actual });
        }
        let size = fs::metadata(&data).map_err(CommitError::Io)?.len();
        Ok((data, size))
    }

    /// Remove what is left of upload `id` (after its commit, or a failed one).
    pub fn discard_upload(&self, id: &str) {
        if is_upload_id(id) {
            let _ = fs::remove_dir_all(self.root.join("uploads").join(id));
        }
    }

    fn quarantine_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("gc")
            .join(format!("{}-{}", d.algorithm.name(), d.hex))
    }

    /// Mark existing bytes as just reused, so a collection running now keeps them.
    fn touch(&self, d: &Digest) -> io::Result<()> {
        File::options()
            .append(true)
            .open(self.blob_path(d))?
            .set_modified(std::time::SystemTime::now())
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm.name())
            .join(&d.hex[..2])
            .join(&d.hex)
    }

    /// Atomically move a fully written, fsynced file into place.
    fn install(&self, from: &Path, d: &Digest) -> io::Result<()> {
        let to = self.blob_path(d);
        let dir = to.parent().expect("blob path has a parent");
        fs::create_dir_all(dir)?;
        fs::rename(from, &to)?;
        sync_dir(dir)
    }
}

impl BlobStore for FsBlobs {
    fn stat(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        fs::read(self.blob_path(digest))
    }

    fn open(&self, digest: &Digest, start: u64, len: u64) -> BoxFuture<io::Result<Body>> {
        let path = self.blob_path(digest);
        Box::pin(async move {
            use http_body_util::BodyExt;
            Ok(berth_http::FileBody::open(&path, start, len).await?.boxed())
        })
    }

    fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        if self.stat(digest).is_some() && self.touch(digest).is_ok() {
            return Ok(());
        }
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        self.install(&tmp, digest)
    }

    fn begin_upload(&self, meta: &str) -> io::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.root.join("uploads").join(&id);
        fs::create_dir_all(&dir)?;
        File::create(dir.join("data"))?;
        fs::write(dir.join("meta"), meta)?;
        Ok(id)
    }

    fn upload_path(&self, id: &str) -> Option<(PathBuf, String)> {
        if !is_upload_id(id) {
            return None;
        }
        let dir = self.root.join("uploads").join(id);
        let meta = fs::read_to_string(dir.join("meta")).ok()?;
        Some((dir.join("data"), meta))
    }

    fn commit_upload(
        &self,
        id: &str,
        digest: &Digest,
        known: Option<Digest>,
    ) -> Result<u64, CommitError> {
        let (data, size) = self.verified_upload(id, digest, known)?;
        if self.stat(digest).is_none() || self.touch(digest).is_err() {
            File::open(&data)
                .and_then(|f| f.sync_all())
                .map_err(CommitError::Io)?;
            self.install(&data, digest).map_err(CommitError::Io)?;
        }
        self.discard_upload(id);
        Ok(size)
    }

    fn cancel_upload(&self, id: &str) -> io::Result<()> {
        if !is_upload_id(id) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such upload"));
        }
        fs::remove_dir_all(self.root.join("uploads").join(id))
    }

    fn uploads(&self) -> Vec<(String, String)> {
        let Ok(dir) = fs::read_dir(self.root.join("uploads")) else {
            return vec![];
        };
        dir.filter_map(|e| e.ok())
            .filter_map(|e| {
                let id = e.file_name().to_string_lossy().to_string();
                let meta = fs::read_to_string(e.path().join("meta")).ok()?;
                Some((id, meta))
            })
            .collect()
    }

    fn delete(&self, digest: &Digest) -> io::Result<()> {
        match fs::remove_file(self.blob_path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> Vec<(Digest, f64)> {
        let mut out = vec![];
        for alg in ["sha256", "sha512"] {
            let Ok(shards) = fs::read_dir(self.root.join("blobs").join(alg)) else {
                continue;
            };
            for shard in shards.flatten() {
                let Ok(files) = fs::read_dir(shard.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    if let (Some(d), Some(t)) = (
                        Digest::parse(&format!("{alg}:{}", f.file_name().to_string_lossy())),
                        modified(f.metadata()),
                    ) {
                        out.push((d, t));
                    }
                }
            }
        }
        out
    }

    fn quarantined_at(&self, digest: &Digest) -> Option<f64> {
        modified(fs::metadata(self.quarantine_path(digest)))
    }

    fn quarantine(&self, digest: &Digest) -> io::Result<()> {
        fs::rename(self.blob_path(digest), self.quarantine_path(digest))
    }

    fn restore(&self, digest: &Digest) -> io::Result<()> {
        let q = self.quarantine_path(digest);
        if self.stat(digest).is_some() {
            // Stored again while set aside: the bytes are the same.
            return fs::remove_file(q);
        }
        self.install(&q, digest)
    }

    fn purge(&self, digest: &Digest) -> io::Result<()> {
        match fs::remove_file(self.quarantine_path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn upload_commit_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let b = FsBlobs::open(dir.path()).unwrap();
        let id = b.begin_upload("{}").unwrap();
        let (path, _) = b.upload_path(&id).unwrap();
        fs::write(&path, b"layer bytes").unwrap();
        let d = Digest::sha256_of(b"layer bytes");
        assert_eq!(b.commit_upload(&id, &d, None).unwrap(), 11);
        assert_eq!(b.stat(&d), Some(11));
        assert!(b.upload_path(&id).is_none(), "session is gone after commit");

        let id = b.begin_upload("{}").unwrap();
        let (path, _) = b.upload_path(&id).unwrap();
        fs::write(&path, b"other").unwrap();
        let wrong = Digest::sha256_of(b"not other");
        assert!(matches!(
            b.commit_upload(&id, &wrong, None),
            Err(CommitError::DigestMismatch { .. })
        ));
        assert_eq!(b.stat(&wrong), None, "nothing stored on mismatch");
        assert!(b.upload_path(&id).is_none());
        assert!(b.upload_path("../../etc").is_none());
    }
}
