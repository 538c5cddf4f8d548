//! berth-s3: Amazon S3's buckets and objects. An object's bytes are one file under
//! `DATA/s3/objects/`, written once (temporary file, fsync, rename) and never changed; its
//! metadata is a record in the store pointing at that file. A write replaces the record and
//! then removes the old file, so a reader sees the old object or the new one, never a mix.
//!
//! Records: `/s3/bucket/{name}` (bucket names are global, as in AWS; the record names the
//! owning account and region) and `/s3/object/{bucket}/{key}`. A bucket record counts its
//! objects: creating or deleting a key rewrites it, so DeleteBucket's "is it empty" and a
//! concurrent PutObject cannot both win.

pub mod http;
mod list;
mod multipart;
mod ops;
mod xml;

#[cfg(test)]
mod tests;

use berth_store::{commit, Plan, Record, Store, StoreError};
use berth_wire::Clock;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use list::{list_objects, Listing};

/// The largest object one PutObject may store (AWS's limit).
pub const MAX_OBJECT: u64 = 5 * 1024 * 1024 * 1024;
/// The longest key, in bytes of UTF-8.
pub const MAX_KEY: usize = 1024;

/// An S3 error: the code and message AWS gives, the HTTP status, and the resource it is
/// about (rendered as `<BucketName>` or `<Key>` beside the code).
#[derive(Debug, Clone)]
pub struct S3Error {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub resource: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        S3Error {
            status,
            code,
            message: message.into(),
            resource: vec![],
        }
    }
    fn with(mut self, name: &'static str, value: &str) -> Self {
        self.resource.push((name, value.to_string()));
        self
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        S3Error::new(
            500,
            "InternalError",
            format!("We encountered an internal error: {e}"),
        )
    }
    pub fn no_such_bucket(bucket: &str) -> Self {
        S3Error::new(404, "NoSuchBucket", "The specified bucket does not exist")
            .with("BucketName", bucket)
    }
    pub fn no_such_key(key: &str) -> Self {
        S3Error::new(404, "NoSuchKey", "The specified key does not exist.").with("Key", key)
    }
    pub fn access_denied() -> Self {
        S3Error::new(403, "AccessDenied", "Access Denied")
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        S3Error::new(400, "InvalidArgument", message)
    }
    pub fn malformed_xml() -> Self {
        S3Error::new(
            400,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

fn store_failed(e: Option<StoreError>) -> S3Error {
    match e {
        Some(e) => S3Error::internal(e),
        None => S3Error::new(
            503,
            "SlowDown",
            "Please reduce your request rate: too many concurrent writes to this bucket",
        ),
    }
}

/// More writes for the transaction that installs an object (its plan answers the object
/// it replaced).
type AlsoInTxn<'a> = dyn Fn(&mut Plan<Option<Arc<Value>>>) -> Result<(), S3Error> + 'a;

/// What is stored with an object besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    /// Content-Encoding, Content-Disposition, Content-Language, Cache-Control, Expires.
    pub headers: Vec<(String, String)>,
    /// `x-amz-meta-*`, names lowercased without the prefix.
    pub user: Vec<(String, String)>,
    /// Checksums the client sent and Berth verified, e.g. ("CRC32", base64).
    pub checksums: Vec<(String, String)>,
}

/// Bytes received and made durable under the temporary directory, with their digests.
#[derive(Debug)]
pub struct Staged {
    pub path: PathBuf,
    pub size: u64,
    pub md5: [u8; 16],
}

pub struct S3 {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    root: PathBuf,
}

pub fn bucket_key(bucket: &str) -> String {
    format!("/s3/bucket/{bucket}")
}

pub fn object_key(bucket: &str, key: &str) -> String {
    format!("/s3/object/{bucket}/{key}")
}

/// AWS's rules for general purpose bucket names.
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.iter().all(|&c| edge_ok(c) || c == b'.' || c == b'-')
        && edge_ok(b[0])
        && edge_ok(b[b.len() - 1])
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| name.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|s| name.ends_with(s))
}

impl S3 {
    /// Open (or create) the object directory under `dir`, drop unfinished uploads, and
    /// remove object files no record points at (left by a crash between writing a file and
    /// committing its record, or between replacing a record and removing the old file).
    pub fn open(store: Arc<dyn Store>, clock: Clock, dir: &Path) -> std::io::Result<S3> {
        let s3 = S3 {
            store,
            clock,
            root: dir.to_path_buf(),
        };
        std::fs::create_dir_all(s3.objects_dir())?;
        let _ = std::fs::remove_dir_all(s3.tmp_dir());
        std::fs::create_dir_all(s3.tmp_dir())?;
        let used: std::collections::HashSet<String> = ["/s3/object/", "/s3/part/"]
            .iter()
            .flat_map(|prefix| s3.store.list(prefix))
            .filter_map(|r| r.value["file"].as_str().map(str::to_string))
            .collect();
        let mut removed = 0;
        for entry in std::fs::read_dir(s3.objects_dir())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !used.contains(&name) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed object files no S3 record refers to");
        }
        Ok(s3)
    }

    fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }
    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// A new, unused path for receiving a body.
    pub fn staging_path(&self) -> PathBuf {
        self.tmp_dir().join(uuid::Uuid::new_v4().to_string())
    }
    /// The file holding an object's bytes.
    pub fn object_path(&self, object: &Value) -> PathBuf {
        self.objects_dir()
            .join(object["file"].as_str().unwrap_or("missing"))
    }

    /// The bucket, if `account` owns it.
    pub fn owned_bucket(&self, account: &str, bucket: &str) -> Result<Record, S3Error> {
        let rec = self
            .store
            .get(&bucket_key(bucket))
            .ok_or_else(|| S3Error::no_such_bucket(bucket))?;
        if rec.value["account"] != account {
            return Err(S3Error::access_denied());
        }
        Ok(rec)
    }

    pub fn create_bucket(
        &self,
        account: &str,
        region: &str,
        bucket: &str,
        location: Option<&str>,
    ) -> Result<(), S3Error> {
        if !valid_bucket_name(bucket) {
            return Err(S3Error::new(
                400,
                "InvalidBucketName",
                "The specified bucket is not valid.",
            )
            .with("BucketName", bucket));
        }
        // us-east-1 takes no constraint (or an empty one); every other region must name
        // itself, as AWS requires.
        match location.filter(|l| !l.is_empty()) {
            None if region != "us-east-1" => {
                return Err(S3Error::new(
                    400,
                    "IllegalLocationConstraintException",
                    "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.",
                ))
            }
            Some(l) if l != region => {
                return Err(S3Error::new(
                    400,
                    "IllegalLocationConstraintException",
                    format!("The {l} location constraint is incompatible for the region specific endpoint this request was sent to."),
                ))
            }
            _ => {}
        }
        let key = bucket_key(bucket);
        let value = json!({
            "name": bucket,
            "account": account,
            "region": region,
            "createdAt": self.clock.now(),
            "objects": 0,
        });
        match self.store.create(&key, value) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => {
                let owner = self.store.get(&key);
                match owner {
                    // us-east-1 answers a repeated create by the owner with success.
                    Some(r) if r.value["account"] == account => {
                        if region == "us-east-1" && r.value["region"] == "us-east-1" {
                            Ok(())
                        } else {
                            Err(S3Error::new(
                                409,
                                "BucketAlreadyOwnedByYou",
                                "Your previous request to create the named bucket succeeded and you already own it.",
                            )
                            .with("BucketName", bucket))
                        }
                    }
                    _ => Err(S3Error::new(
                        409,
                        "BucketAlreadyExists",
                        "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                    )
                    .with("BucketName", bucket)),
                }
            }
            Err(e) => Err(S3Error::internal(e)),
        }
    }

    /// DeleteBucket of an empty bucket; its unfinished multipart uploads go with it.
    pub fn delete_bucket(&self, account: &str, bucket: &str) -> Result<(), S3Error> {
        let deleted = commit(
            self.store.as_ref(),
            || {
                let rec = self.owned_bucket(account, bucket)?;
                if rec.value["objects"].as_u64().unwrap_or(0) > 0 {
                    return Err(S3Error::new(
                        409,
                        "BucketNotEmpty",
                        "The bucket you tried to delete is not empty",
                    )
                    .with("BucketName", bucket));
                }
                let mut plan = Plan::new(());
                plan.delete(&rec);
                Ok(plan)
            },
            store_failed,
        );
        if deleted.is_ok() {
            self.abort_uploads_of(bucket);
        }
        deleted
    }

    /// The buckets `account` owns, by name.
    pub fn list_buckets(&self, account: &str) -> Vec<Arc<Value>> {
        self.store
            .list("/s3/bucket/")
            .into_iter()
            .filter(|r| r.value["account"] == account)
            .map(|r| r.value)
            .collect()
    }

    pub fn object(&self, account: &str, bucket: &str, key: &str) -> Result<Arc<Value>, S3Error> {
        self.owned_bucket(account, bucket)?;
        self.store
            .get(&object_key(bucket, key))
            .map(|r| r.value)
            .ok_or_else(|| S3Error::no_such_key(key))
    }

    /// Make `staged` the object `bucket/key`: move the file into place (durably), then
    /// commit the record; the replaced object's file is removed after. Returns the record.
    pub fn put_object(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        staged: Staged,
        meta: ObjectMeta,
    ) -> Result<Value, S3Error> {
        let etag = hex::encode(staged.md5);
        let result = self.install(
            account,
            bucket,
            key,
            (&staged.path, staged.size, etag),
            meta,
            &|_| Ok(()),
        );
        let _ = std::fs::remove_file(&staged.path);
        result
    }

    /// CopyObject: the new object shares the source's file (a hard link: files are never
    /// changed in place), with the source's metadata or `replace`.
    pub fn copy_object(
        &self,
        account: &str,
        source: (&str, &str),
        target: (&str, &str),
        replace: Option<ObjectMeta>,
    ) -> Result<Value, S3Error> {
        // The source's file may be replaced meanwhile: read the record again if it went.
        for _ in 0..3 {
            let src = self.object(account, source.0, source.1)?;
            let link = self.staging_path();
            match std::fs::hard_link(self.object_path(&src), &link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(S3Error::internal(e)),
            }
            let meta = match &replace {
                Some(m) => m.clone(),
                None => meta_of(&src),
            };
            let size = src["size"].as_u64().unwrap_or(0);
            let etag = src["etag"].as_str().unwrap_or_default().to_string();
            let result = self.install(
                account,
                target.0,
                target.1,
                (&link, size, etag),
                meta,
                &|_| Ok(()),
            );
            let _ = std::fs::remove_file(&link);
            return result;
        }
        Err(S3Error::no_such_key(source.1))
    }

    /// Make the file `from` (of `size` bytes, with `etag`) the object `bucket/key`, in one
    /// transaction with whatever `also` adds to it.
    fn install(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        (from, size, etag): (&Path, u64, String),
        meta: ObjectMeta,
        also: &AlsoInTxn<'_>,
    ) -> Result<Value, S3Error> {
        self.owned_bucket(account, bucket)?;
        let (file, path) = self.keep_file(from)?;
        let value = json!({
            "file": file,
            "size": size,
            "etag": etag,
            "lastModified": self.clock.now(),
            "contentType": meta.content_type,
            "headers": pairs(&meta.headers),
            "metadata": pairs(&meta.user),
            "checksums": pairs(&meta.checksums),
        });
        let okey = object_key(bucket, key);
        let committed = commit(
            self.store.as_ref(),
            || {
                let b = self.owned_bucket(account, bucket)?;
                let old = self.store.get(&okey);
                let mut plan = Plan::new(old.as_ref().map(|o| o.value.clone()));
                match &old {
                    Some(o) => plan.put(o, value.clone()),
                    None => {
                        plan.put(&b, counted(&b.value, 1));
                        plan.create(okey.clone(), value.clone());
                    }
                }
                also(&mut plan)?;
                Ok(plan)
            },
            store_failed,
        );
        self.settle(committed, &path, value)
    }

    /// Move a staged file into the object directory under a new name, durably. Returns
    /// the name (what a record stores) and the path.
    fn keep_file(&self, from: &Path) -> Result<(String, PathBuf), S3Error> {
        let file = uuid::Uuid::new_v4().to_string();
        let path = self.objects_dir().join(&file);
        std::fs::rename(from, &path)
            .and_then(|()| sync_dir(&self.objects_dir()))
            .map_err(S3Error::internal)?;
        Ok((file, path))
    }

    /// After a write that replaced a file-backed record (an object or a part): remove the
    /// replaced record's file once committed, or the new file if nothing was.
    fn settle(
        &self,
        committed: Result<Option<Arc<Value>>, S3Error>,
        new_file: &Path,
        value: Value,
    ) -> Result<Value, S3Error> {
        match committed {
            Ok(old) => {
                if let Some(old) = old {
                    let _ = std::fs::remove_file(self.object_path(&old));
                }
                Ok(value)
            }
            Err(e) => {
                let _ = std::fs::remove_file(new_file);
                Err(e)
            }
        }
    }

    /// DeleteObject: succeeds whether or not the key exists, as in AWS.
    pub fn delete_object(&self, account: &str, bucket: &str, key: &str) -> Result<(), S3Error> {
        let okey = object_key(bucket, key);
        let removed = commit(
            self.store.as_ref(),
            || {
                let b = self.owned_bucket(account, bucket)?;
                let Some(old) = self.store.get(&okey) else {
                    return Ok(Plan::new(None));
                };
                let mut plan = Plan::new(Some(old.value.clone()));
                plan.delete(&old);
                plan.put(&b, counted(&b.value, -1));
                Ok(plan)
            },
            store_failed,
        )?;
        if let Some(old) = removed {
            let _ = std::fs::remove_file(self.object_path(&old));
        }
        Ok(())
    }

    /// The whole of a small object, for Berth's own use (a task's environment files).
    pub fn read_object(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        max: u64,
    ) -> Result<Vec<u8>, S3Error> {
        for _ in 0..3 {
            let obj = self.object(account, bucket, key)?;
            if obj["size"].as_u64().unwrap_or(0) > max {
                return Err(S3Error::invalid_argument(format!(
                    "the object is larger than {max} bytes"
                )));
            }
            match std::fs::read(self.object_path(&obj)) {
                Ok(b) => return Ok(b),
                // Replaced between reading the record and opening the file: look again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(S3Error::internal(e)),
            }
        }
        Err(S3Error::no_such_key(key))
    }

    /// An environment file named by its S3 ARN (`arn:aws:s3:::bucket/key`), read for a task
    /// of `account`, as the ECS agent reads it with the task's execution role.
    pub fn read_env_file(&self, account: &str, arn: &str) -> Result<Vec<u8>, String> {
        let (bucket, key) = parse_s3_arn(arn).ok_or_else(|| {
            format!("unable to parse bucket and key from s3 ARN specified in environmentFile {arn}")
        })?;
        self.read_object(account, bucket, key, 10 * 1024 * 1024)
            .map_err(|e| {
                format!(
                    "unable to download env file with key {key} from bucket {bucket}, error: {e}"
                )
            })
    }
}

/// `arn:PARTITION:s3:::BUCKET/KEY` → (bucket, key).
pub fn parse_s3_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let (_partition, rest) = rest.split_once(':')?;
    let path = rest.strip_prefix("s3:::")?;
    let (bucket, key) = path.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// The bucket record with its object count moved by `delta`.
fn counted(bucket: &Value, delta: i64) -> Value {
    let mut v = bucket.clone();
    let n = v["objects"].as_i64().unwrap_or(0) + delta;
    v["objects"] = json!(n.max(0));
    v
}

/// Name-value pairs as a JSON object, as records keep them.
fn pairs(v: &[(String, String)]) -> Value {
    v.iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The metadata stored in an object record, for copying it.
fn meta_of(obj: &Value) -> ObjectMeta {
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    };
    ObjectMeta {
        content_type: obj["contentType"].as_str().map(str::to_string),
        headers: pairs(&obj["headers"]),
        user: pairs(&obj["metadata"]),
        checksums: pairs(&obj["checksums"]),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
