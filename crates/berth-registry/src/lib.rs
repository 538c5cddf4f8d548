//! berth-registry: an OCI distribution v1.1 registry with ECR's repository model.
//! `Registry` holds the metadata rules (repositories, images, tags, which blobs a
//! repository may read) over the record store and a content-addressed `BlobStore`;
//! `http` serves the `/v2/` API on top of it; the ECR API (berth-ecr) uses the same
//! `Registry`, so both views always agree.

pub mod blobs;
pub mod digest;
pub mod gc;
mod hashing;
pub mod http;
mod manifest;
pub mod token;

pub use blobs::{BlobStore, FsBlobs};
pub use digest::Digest;
pub use manifest::MANIFEST_MEDIA_TYPES;

use berth_store::{Cond, Op, Record, Store, StoreError};
use berth_wire::Clock;
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest manifest accepted (distribution's own limit).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Which account and region a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

/// An OCI distribution error: its code, HTTP status and message.
#[derive(Debug, Clone)]
pub struct RegistryError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl RegistryError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        RegistryError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn name_unknown(scope: &Scope, repo: &str) -> Self {
        Self::new(
            404,
            "NAME_UNKNOWN",
            format!(
                "The repository with name '{repo}' does not exist in the registry with id '{}'",
                scope.account
            ),
        )
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(500, "UNKNOWN", e.to_string())
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        RegistryError::internal(e)
    }
}

/// A stored image (a manifest in a repository).
#[derive(Debug, Clone)]
pub struct Image {
    pub record: Value,
    pub tags: Vec<String>,
}

/// Repository names as ECR accepts them: lowercase path components separated by `/`,
/// each of letters, digits and single `.`, `_`, `-` or `__` separators; 2 to 256 long.
pub fn valid_repository_name(name: &str) -> bool {
    if name.len() < 2 || name.len() > 256 {
        return false;
    }
    name.split('/').all(|part| {
        let b = part.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut prev_sep = false;
        for &c in b {
            let alnum = c.is_ascii_lowercase() || c.is_ascii_digit();
            if alnum {
                prev_sep = false;
            } else if matches!(c, b'.' | b'_' | b'-') {
                // "__" is allowed; other doubled separators are not.
                if prev_sep && c != b'_' {
                    return false;
                }
                prev_sep = true;
            } else {
                return false;
            }
        }
        true
    })
}

/// Tags as OCI allows them: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

pub struct Registry {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub clock: Clock,
    pub default_account: String,
    /// The host:port users push to (repositoryUri), e.g. `localhost:4566`.
    pub registry_host: String,
    /// Signs GetAuthorizationToken tokens.
    pub token_secret: String,
    /// With `--enforce-auth`, `/v2/` requires `AWS:<token>` basic auth.
    pub require_auth: bool,
    /// Running digests of uploads in progress.
    pub hashers: hashing::UploadHashers,
    /// Read-held by every write that makes a blob live (an upload's commit with its
    /// membership, a mount, a manifest put); write-held by the garbage collector from its
    /// final check to its deletions, so neither interleaves with the other. The
    /// filesystem store's rename-aside closes that race by itself; a bucket has no rename.
    /// parking_lot's, because its fair unlock hands the lock to the writes waiting when
    /// the collector lets go between batches (std's lets the collector take it back).
    pub blob_writes: parking_lot::RwLock<()>,
}

fn prefix(scope: &Scope) -> String {
    format!("/{}/{}/ecr", scope.account, scope.region)
}

impl Registry {
    /// Hold while writing a blob and recording who may read it (see `blob_writes`).
    pub fn writing_blobs(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.blob_writes.read()
    }

    pub fn repo_key(scope: &Scope, repo: &str) -> String {
        format!("{}/repo/{repo}", prefix(scope))
    }
    fn image_key(scope: &Scope, repo: &str, d: &str) -> String {
        format!("{}/image/{repo}/{d}", prefix(scope))
    }
    fn tag_key(scope: &Scope, repo: &str, tag: &str) -> String {
        format!("{}/tag/{repo}/{tag}", prefix(scope))
    }
    /// A blob a repository may read: uploaded to it, mounted into it, or referenced by one of its manifests.
    fn member_key(scope: &Scope, repo: &str, d: &str) -> String {
        format!("{}/blob/{repo}/{d}", prefix(scope))
    }

    pub fn repository(&self, scope: &Scope, repo: &str) -> Result<Record, RegistryError> {
        self.store
            .get(&Self::repo_key(scope, repo))
            .ok_or_else(|| RegistryError::name_unknown(scope, repo))
    }

    pub fn repositories(&self, scope: &Scope) -> Vec<Record> {
        self.store.list(&format!("{}/repo/", prefix(scope)))
    }

    /// Size of a blob this repository may read.
    pub fn blob_in_repo(&self, scope: &Scope, repo: &str, d: &Digest) -> Option<u64> {
        self.store
            .get(&Self::member_key(scope, repo, &d.to_string()))?;
        self.blobs.stat(d)
    }

    /// Record that `repo` may read blob `d` (after an upload or a mount).
    pub fn add_blob(
        &self,
        scope: &Scope,
        repo: &str,
        d: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        let k = Self::member_key(scope, repo, &d.to_string());
        for _ in 0..8 {
            match self.store.get(&k) {
                None => {
                    self.store
                        .put(&k, json!({"digest": d.to_string(), "size": size}))?;
                    return Ok(());
                }
                // Added again: the garbage collector's grace period (gc.rs) starts over.
                Some(r) if r.value.get(gc::UNREFERENCED_SINCE).is_some() => {
                    match self.store.txn(
                        &[Cond::Revision(k.clone(), r.revision)],
                        vec![Op::Put(
                            k.clone(),
                            json!({"digest": d.to_string(), "size": size}),
                        )],
                    ) {
                        Err(StoreError::Conflict(_)) => continue,
                        r => return r.map(|_| ()).map_err(Into::into),
                    }
                }
                Some(_) => return Ok(()),
            }
        }
        Err(RegistryError::new(
            409,
            "DENIED",
            "the blob was changed concurrently; retry the upload",
        ))
    }

    /// Forget `repo`'s access to blob `d` (DELETE on a blob). The bytes go when nothing references them.
    pub fn remove_blob(
        &self,
        scope: &Scope,
        repo: &str,
        d: &Digest,
    ) -> Result<bool, RegistryError> {
        let k = Self::member_key(scope, repo, &d.to_string());
        if self.store.get(&k).is_none() {
            return Ok(false);
        }
        self.store.txn(&[], vec![Op::Delete(k)])?;
        Ok(true)
    }

    /// Images of a repository with their tags, in digest order.
    pub fn images(&self, scope: &Scope, repo: &str) -> Vec<Image> {
        let mut tags: std::collections::HashMap<String, Vec<String>> = Default::default();
        for t in self.store.list(&format!("{}/tag/{repo}/", prefix(scope))) {
            let tag = t.key.rsplit('/').next().unwrap_or_default().to_string();
            if let Some(d) = t.value["imageDigest"].as_str() {
                tags.entry(d.to_string()).or_default().push(tag);
            }
        }
        self.store
            .list(&format!("{}/image/{repo}/", prefix(scope)))
            .into_iter()
            .map(|r| {
                let d = r.value["imageDigest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                Image {
                    record: (*r.value).clone(),
                    tags: tags.remove(&d).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Child manifests of the indexes (manifest lists) among `images`, by index digest.
    pub fn index_children(
        &self,
        images: &[Image],
    ) -> std::collections::HashMap<String, Vec<String>> {
        let mut out = std::collections::HashMap::new();
        for i in images {
            let media = i.record["imageManifestMediaType"]
                .as_str()
                .unwrap_or_default();
            if !media.contains("index") && !media.contains("manifest.list") {
                continue;
            }
            let Some(d) = i.record["imageDigest"].as_str().and_then(Digest::parse) else {
                continue;
            };
            let Ok(bytes) = self.blobs.read(&d) else {
                continue;
            };
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let kids = v["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["digest"].as_str().map(str::to_string))
                .collect();
            out.insert(d.to_string(), kids);
        }
        out
    }

    /// Resolve a tag or digest to a stored manifest: (digest, media type, bytes).
    pub fn get_manifest(
        &self,
        scope: &Scope,
        repo: &str,
        reference: &str,
    ) -> Result<(Digest, String, Vec<u8>), RegistryError> {
        self.repository(scope, repo)?;
        let unknown = || {
            RegistryError::new(
                404,
                "MANIFEST_UNKNOWN",
                format!("manifest unknown: {repo}:{reference}"),
            )
        };
        let digest = match Digest::parse(reference) {
            Some(d) => d,
            None => {
                let t = self
                    .store
                    .get(&Self::tag_key(scope, repo, reference))
                    .ok_or_else(unknown)?;
                Digest::parse(t.value["imageDigest"].as_str().unwrap_or_default())
                    .ok_or_else(unknown)?
            }
        };
        let img = self
            .store
            .get(&Self::image_key(scope, repo, &digest.to_string()))
            .ok_or_else(unknown)?;
        let bytes = self.blobs.read(&digest).map_err(RegistryError::internal)?;
        let media = img.value["imageManifestMediaType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((digest, media, bytes))
    }

    /// Store a manifest under `reference` (a tag or its own digest). Every blob and child
    /// manifest it references must already be in the repository. Returns the digest and
    /// the subject's digest, if any.
    pub fn put_manifest(
        &self,
        scope: &Scope,
        repo: &str,
        reference: &str,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<(Digest, Option<String>), RegistryError> {
        for _ in 0..8 {
            let attempt = {
                let _writing = self.writing_blobs();
                self.put_manifest_once(scope, repo, reference, content_type, bytes)?
            };
            if let Some(done) = attempt {
                return Ok(done);
            }
        }
        Err(RegistryError::new(
            409,
            "DENIED",
            "the repository's blobs were changed concurrently; retry the push",
        ))
    }

    /// One attempt of `put_manifest`; `None` when a blob membership it relies on changed
    /// (a concurrent push or garbage collection), so the caller tries again.
    fn put_manifest_once(
        &self,
        scope: &Scope,
        repo: &str,
        reference: &str,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<Option<(Digest, Option<String>)>, RegistryError> {
        let repo_rec = self.repository(scope, repo)?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::new(
                413,
                "MANIFEST_INVALID",
                format!("manifest is larger than {MAX_MANIFEST_BYTES} bytes"),
            ));
        }
        let parsed = manifest::parse(bytes, content_type)?;
        let digest = match Digest::parse(reference) {
            Some(d) => {
                let actual = match d.algorithm {
                    digest::Algorithm::Sha256 => Digest::sha256_of(bytes),
                    digest::Algorithm::Sha512 => {
                        use sha2::Digest as _;
                        Digest {
                            algorithm: d.algorithm,
                            hex: hex::encode(sha2::Sha512::digest(bytes)),
                        }
                    }
                };
                if actual != d {
                    return Err(RegistryError::new(
                        400,
                        "DIGEST_INVALID",
                        format!("manifest digest {actual} does not match {d}"),
                    ));
                }
                d
            }
            None => {
                if !valid_tag(reference) {
                    return Err(RegistryError::new(
                        400,
                        "TAG_INVALID",
                        format!("invalid tag {reference:?}"),
                    ));
                }
                Digest::sha256_of(bytes)
            }
        };
        // Everything referenced must be readable from this repository.
        let mut size = bytes.len() as u64;
        let mut members: Vec<Record> = vec![];
        for b in &parsed.blobs {
            let d = Digest::parse(b).ok_or_else(|| {
                RegistryError::new(400, "MANIFEST_INVALID", format!("invalid digest {b}"))
            })?;
            let unknown = || {
                RegistryError::new(
                    400,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!("blob unknown to registry: {b}"),
                )
            };
            let s = self.blob_in_repo(scope, repo, &d).ok_or_else(unknown)?;
            size += s;
            // Rewritten (under a revision condition) in the commit below, so a garbage
            // collection removing the blob at the same time makes one of the two fail.
            let m = self
                .store
                .get(&Self::member_key(scope, repo, &d.to_string()))
                .ok_or_else(unknown)?;
            if !members.iter().any(|x| x.key == m.key) {
                members.push(m);
            }
        }
        for m in &parsed.manifests {
            if self.store.get(&Self::image_key(scope, repo, m)).is_none() {
                return Err(RegistryError::new(
                    400,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!("manifest unknown to repository: {m}"),
                ));
            }
        }

        let mut conds = vec![];
        let mut ops = vec![];
        for m in &members {
            conds.push(Cond::Revision(m.key.clone(), m.revision));
            ops.push(Op::Put(
                m.key.clone(),
                json!({"digest": m.value["digest"], "size": m.value["size"]}),
            ));
        }
        let is_tag = Digest::parse(reference).is_none();
        if is_tag {
            let tk = Self::tag_key(scope, repo, reference);
            match self.store.get(&tk) {
                Some(t) if t.value["imageDigest"] == digest.to_string() => {}
                Some(t) => {
                    if repo_rec.value["imageTagMutability"] == "IMMUTABLE" {
                        return Err(RegistryError::new(
                            400,
                            "TAG_INVALID",
                            format!(
                                "The image tag '{reference}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."
                            ),
                        ));
                    }
                    conds.push(Cond::Revision(tk.clone(), t.revision));
                    ops.push(Op::Put(tk, json!({"imageDigest": digest.to_string()})));
                }
                None => {
                    conds.push(Cond::Absent(tk.clone()));
                    ops.push(Op::Put(tk, json!({"imageDigest": digest.to_string()})));
                }
            }
        }
        let ik = Self::image_key(scope, repo, &digest.to_string());
        if self.store.get(&ik).is_none() {
            let mut rec = json!({
                "registryId": scope.account,
                "repositoryName": repo,
                "imageDigest": digest.to_string(),
                "imageManifestMediaType": parsed.media_type,
                "imageSizeInBytes": size,
                "imagePushedAt": self.clock.now(),
            });
            if let Some(a) = &parsed.artifact_type {
                rec["artifactMediaType"] = json!(a);
            }
            if let Some(s) = &parsed.subject {
                rec["subjectManifestDigest"] = json!(s);
            }
            ops.push(Op::Put(ik, rec));
        }
        // The manifest is itself a blob of the repository.
        self.blobs
            .put_bytes(&digest, bytes)
            .map_err(RegistryError::internal)?;
        let mk = Self::member_key(scope, repo, &digest.to_string());
        match self.store.get(&mk) {
            None => conds.push(Cond::Absent(mk.clone())),
            Some(m) => conds.push(Cond::Revision(mk.clone(), m.revision)),
        }
        ops.push(Op::Put(
            mk,
            json!({"digest": digest.to_string(), "size": bytes.len()}),
        ));
        match self.store.txn(&conds, ops) {
            Ok(_) => {}
            Err(StoreError::Conflict(k)) if k.starts_with(&format!("{}/blob/", prefix(scope))) => {
                return Ok(None)
            }
            Err(StoreError::Conflict(_)) => {
                return Err(RegistryError::new(
                    409,
                    "DENIED",
                    "the tag was changed concurrently; retry the push",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Some((digest, parsed.subject)))
    }

    /// Delete a manifest by digest (with its tags), or just a tag.
    pub fn delete_manifest(
        &self,
        scope: &Scope,
        repo: &str,
        reference: &str,
    ) -> Result<(), RegistryError> {
        self.repository(scope, repo)?;
        let unknown = || {
            RegistryError::new(
                404,
                "MANIFEST_UNKNOWN",
                format!("manifest unknown: {repo}:{reference}"),
            )
        };
        match Digest::parse(reference) {
            None => {
                let tk = Self::tag_key(scope, repo, reference);
                self.store.get(&tk).ok_or_else(unknown)?;
                self.store.txn(&[], vec![Op::Delete(tk)])?;
            }
            Some(d) => {
                let ik = Self::image_key(scope, repo, &d.to_string());
                self.store.get(&ik).ok_or_else(unknown)?;
                let mut ops = vec![Op::Delete(ik)];
                for t in self.store.list(&format!("{}/tag/{repo}/", prefix(scope))) {
                    if t.value["imageDigest"] == d.to_string() {
                        ops.push(Op::Delete(t.key.clone()));
                    }
                }
                self.store.txn(&[], ops)?;
            }
        }
        Ok(())
    }

    /// Tags of a repository, sorted, for `/tags/list`.
    pub fn tags(&self, scope: &Scope, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.repository(scope, repo)?;
        Ok(self
            .store
            .list(&format!("{}/tag/{repo}/", prefix(scope)))
            .into_iter()
            .map(|r| r.key.rsplit('/').next().unwrap_or_default().to_string())
            .collect())
    }

    /// Manifests in `repo` whose subject is `d`, as OCI descriptors (the referrers API).
    pub fn referrers(
        &self,
        scope: &Scope,
        repo: &str,
        d: &Digest,
    ) -> Result<Vec<Value>, RegistryError> {
        self.repository(scope, repo)?;
        let mut out = vec![];
        for img in self.store.list(&format!("{}/image/{repo}/", prefix(scope))) {
            if img.value["subjectManifestDigest"] != d.to_string() {
                continue;
            }
            let digest = img.value["imageDigest"].as_str().unwrap_or_default();
            let Some(dd) = Digest::parse(digest) else {
                continue;
            };
            let bytes = self.blobs.read(&dd).unwrap_or_default();
            let m: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let mut desc = json!({
                "mediaType": img.value["imageManifestMediaType"],
                "digest": digest,
                "size": bytes.len(),
            });
            let at = m
                .get("artifactType")
                .cloned()
                .or_else(|| m.pointer("/config/mediaType").cloned());
            if let Some(at) = at {
                desc["artifactType"] = at;
            }
            if let Some(a) = m.get("annotations") {
                desc["annotations"] = a.clone();
            }
            out.push(desc);
        }
        Ok(out)
    }

    /// Metadata for a new upload session of `repo`.
    pub fn upload_meta(&self, scope: &Scope, repo: &str) -> String {
        json!({"account": scope.account, "region": scope.region, "repo": repo, "started": self.clock.now()}).to_string()
    }

    /// Drop upload sessions started more than `max_age_secs` ago (by the clock); returns how many.
    pub fn expire_uploads(&self, max_age_secs: f64) -> usize {
        let now = self.clock.now();
        let mut n = 0;
        for (id, meta) in self.blobs.uploads() {
            let started = serde_json::from_str::<Value>(&meta)
                .ok()
                .and_then(|m| m["started"].as_f64())
                .unwrap_or(0.0);
            if now - started > max_age_secs && self.blobs.cancel_upload(&id).is_ok() {
                self.hashers.forget(&id);
                n += 1;
            }
        }
        n
    }

    /// Remove a repository's records (its images, tags and blob memberships).
    pub fn delete_repository_records(
        &self,
        scope: &Scope,
        repo: &str,
    ) -> Result<(), RegistryError> {
        let p = prefix(scope);
        let mut ops = vec![Op::Delete(Self::repo_key(scope, repo))];
        for kind in ["image", "tag", "blob"] {
            for r in self.store.list(&format!("{p}/{kind}/{repo}/")) {
                ops.push(Op::Delete(r.key.clone()));
            }
        }
        // Per-repository settings kept beside the repository record.
        for kind in ["policy", "lifecycle", "lifecycle-preview"] {
            let k = format!("{p}/{kind}/{repo}");
            if self.store.get(&k).is_some() {
                ops.push(Op::Delete(k));
            }
        }
        self.store.txn(&[], ops)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn repository_names() {
        for ok in ["ab", "web", "team/web-app", "a.b_c", "a__b", "x/y/z1"] {
            assert!(valid_repository_name(ok), "{ok}");
        }
        for bad in [
            "a",
            "Web",
            "-web",
            "web-",
            "a..b",
            "a//b",
            "/web",
            "we b",
            &"a".repeat(257),
        ] {
            assert!(!valid_repository_name(bad), "{bad}");
        }
    }
    fn registry(dir: &std::path::Path) -> Registry {
        Registry {
            store: Arc::new(berth_store::SqliteStore::open(&dir.join("db")).unwrap()),
            blobs: Arc::new(FsBlobs::open(&dir.join("blobs")).unwrap()),
            clock: Clock::default(),
            default_account: "000000000000".into(),
            registry_host: "localhost:1".into(),
            token_secret: "s".into(),
            require_auth: false,
            hashers: Default::default(),
            blob_writes: Default::default(),
        }
    }

    #[test]
    fn old_uploads_expire_and_new_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path());
        let scope = Scope {
            account: "000000000000".into(),
            region: "us-east-1".into(),
        };
        let old = reg
            .blobs
            .begin_upload(&reg.upload_meta(&scope, "web"))
            .unwrap();
        reg.clock.advance_ms(25 * 3600 * 1000);
        let fresh = reg
            .blobs
            .begin_upload(&reg.upload_meta(&scope, "web"))
            .unwrap();
        assert_eq!(reg.expire_uploads(24.0 * 3600.0), 1);
        assert!(reg.blobs.upload_path(&old).is_none());
        assert!(reg.blobs.upload_path(&fresh).is_some());
    }

    #[test]
    fn tags() {
        assert!(valid_tag("latest") && valid_tag("1.0.0-rc_1") && valid_tag("_x"));
        assert!(
            !valid_tag("") && !valid_tag(".x") && !valid_tag("a/b") && !valid_tag(&"a".repeat(129))
        );
    }
}
