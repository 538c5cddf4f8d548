//! Multipart uploads. An upload is a record (`/s3/upload/{bucket}/{id}`: key, metadata,
//! checksum algorithm); each part is a file under `objects/` and a record
//! (`/s3/part/{id}/{number}`). Committing a part rewrites the upload record too, so
//! CompleteMultipartUpload, which deletes the upload and the parts it read in one
//! transaction with the new object, cannot miss a part committed meanwhile: it reads
//! again and decides again.

use crate::{meta_of, pairs, store_failed, ObjectMeta, S3Error, Staged, S3};
use base64::Engine;
use berth_store::{commit, Plan, Record};
use md5::Digest;
use serde_json::{json, Value};
use std::sync::Arc;

/// Parts but the last must be at least this big (AWS's limit).
pub const MIN_PART: u64 = 5 * 1024 * 1024;
pub const MAX_PARTS: u32 = 10_000;

pub fn upload_key(bucket: &str, id: &str) -> String {
    format!("/s3/upload/{bucket}/{id}")
}

fn part_prefix(id: &str) -> String {
    format!("/s3/part/{id}/")
}

fn part_key(id: &str, number: u32) -> String {
    format!("/s3/part/{id}/{number:05}")
}

pub fn no_such_upload(id: &str) -> S3Error {
    S3Error::new(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
    .with("UploadId", id)
}

fn invalid_part() -> S3Error {
    S3Error::new(
        400,
        "InvalidPart",
        "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
    )
}

/// A part as CompleteMultipartUpload names it.
pub struct WantedPart {
    pub number: u32,
    pub etag: String,
}

impl S3 {
    /// CreateMultipartUpload: the upload's id.
    pub fn create_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        checksum_algorithm: Option<&str>,
    ) -> Result<String, S3Error> {
        self.owned_bucket(account, bucket)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let value = json!({
            "key": key,
            "account": account,
            "initiated": self.clock.now(),
            "contentType": meta.content_type,
            "headers": pairs(&meta.headers),
            "metadata": pairs(&meta.user),
            "checksumAlgorithm": checksum_algorithm,
            "parts": 0,
        });
        self.store
            .create(&upload_key(bucket, &id), value)
            .map_err(S3Error::internal)?;
        Ok(id)
    }

    /// The upload `id` of `bucket/key`, if `account` may use it.
    pub fn upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<Record, S3Error> {
        self.owned_bucket(account, bucket)?;
        self.store
            .get(&upload_key(bucket, id))
            .filter(|u| u.value["key"] == key)
            .ok_or_else(|| no_such_upload(id))
    }

    /// The parts of upload `id`, by number.
    pub fn parts(&self, id: &str) -> Vec<Record> {
        self.store.list(&part_prefix(id))
    }

    /// UploadPart: `staged` becomes part `number` (replacing an earlier one). Returns the
    /// part's record.
    #[allow(clippy::too_many_arguments)]
    pub fn put_part(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        id: &str,
        number: u32,
        staged: Staged,
        checksum: Option<(String, String)>,
    ) -> Result<Value, S3Error> {
        let (file, path) = match self.keep_file(&staged.path) {
            Ok(kept) => kept,
            Err(e) => {
                let _ = std::fs::remove_file(&staged.path);
                return Err(e);
            }
        };
        let value = json!({
            "file": file,
            "size": staged.size,
            "etag": hex::encode(staged.md5),
            "lastModified": self.clock.now(),
            "checksums": checksum.map(|(a, v)| json!({a: v})).unwrap_or(json!({})),
        });
        let pkey = part_key(id, number);
        let replaced = commit(
            self.store.as_ref(),
            || {
                let upload = self.upload(account, bucket, key, id)?;
                let old = self.store.get(&pkey);
                let mut plan = Plan::new(old.as_ref().map(|o| o.value.clone()));
                let mut u = (*upload.value).clone();
                u["parts"] = json!(u["parts"].as_u64().unwrap_or(0) + 1);
                plan.put(&upload, u);
                match &old {
                    Some(o) => plan.put(o, value.clone()),
                    None => plan.create(pkey.clone(), value.clone()),
                }
                Ok(plan)
            },
            store_failed,
        );
        self.settle(replaced, &path, value)
    }

    /// CompleteMultipartUpload: the named parts, in order, become the object; the upload
    /// and all its parts are gone. Returns the object's record.
    pub fn complete_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        id: &str,
        wanted: &[WantedPart],
    ) -> Result<Value, S3Error> {
        if wanted.is_empty() {
            return Err(S3Error::malformed_xml());
        }
        if wanted.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(S3Error::new(
                400,
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            ));
        }
        let upload = self.upload(account, bucket, key, id)?;
        let parts = self.parts(id);
        let mut chosen = vec![];
        for (i, w) in wanted.iter().enumerate() {
            let part = parts
                .iter()
                .find(|p| p.key == part_key(id, w.number))
                .filter(|p| p.value["etag"].as_str() == Some(w.etag.trim_matches('"')))
                .ok_or_else(invalid_part)?;
            let size = part.value["size"].as_u64().unwrap_or(0);
            if size < MIN_PART && i + 1 < wanted.len() {
                return Err(S3Error::new(
                    400,
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                ));
            }
            chosen.push(part.value.clone());
        }
        // The object is one file: the parts copied end to end (in the kernel), made durable.
        let staged = self.staging_path();
        let joined = (|| -> std::io::Result<u64> {
            let mut out = std::fs::File::create(&staged)?;
            let mut size = 0;
            for p in &chosen {
                size += std::io::copy(&mut std::fs::File::open(self.object_path(p))?, &mut out)?;
            }
            out.sync_all()?;
            Ok(size)
        })();
        let size = match joined {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(S3Error::internal(e));
            }
        };
        // AWS's multipart ETag: the MD5 of the parts' MD5s, then the part count.
        let mut md5 = md5::Md5::new();
        for p in &chosen {
            let mut raw = [0u8; 16];
            hex::decode_to_slice(p["etag"].as_str().unwrap_or_default(), &mut raw)
                .map_err(S3Error::internal)?;
            md5.update(raw);
        }
        let etag = format!("{}-{}", hex::encode(md5.finalize()), chosen.len());
        let mut meta = meta_of(&upload.value);
        meta.checksums
            .extend(composite_checksum(&upload.value, &chosen));
        let upload_rev = upload.revision;
        let result = self.install(account, bucket, key, (&staged, size, etag), meta, &|plan| {
            // Whatever changed since the parts were read (a part committed, the upload
            // aborted) fails this condition: the whole completion is then refused.
            plan.conds.push(berth_store::Cond::Revision(
                upload_key(bucket, id),
                upload_rev,
            ));
            plan.ops
                .push(berth_store::Op::Delete(upload_key(bucket, id)));
            for p in &parts {
                plan.delete(p);
            }
            Ok(())
        });
        let _ = std::fs::remove_file(&staged);
        if result.is_ok() {
            for p in &parts {
                let _ = std::fs::remove_file(self.object_path(&p.value));
            }
        }
        result
    }

    /// AbortMultipartUpload: the upload and its parts are gone.
    pub fn abort_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<(), S3Error> {
        let files = commit(
            self.store.as_ref(),
            || {
                let upload = self.upload(account, bucket, key, id)?;
                let parts = self.parts(id);
                let mut plan = Plan::new(parts.iter().map(|p| p.value.clone()).collect::<Vec<_>>());
                plan.delete(&upload);
                for p in &parts {
                    plan.delete(p);
                }
                Ok(plan)
            },
            store_failed,
        )?;
        for f in files {
            let _ = std::fs::remove_file(self.object_path(&f));
        }
        Ok(())
    }

    /// Unfinished uploads of `bucket`, by key then id.
    pub fn uploads(&self, bucket: &str) -> Vec<(String, Arc<Value>)> {
        let prefix = upload_key(bucket, "");
        let mut out: Vec<(String, Arc<Value>)> = self
            .store
            .list(&prefix)
            .into_iter()
            .map(|r| (r.key[prefix.len()..].to_string(), r.value))
            .collect();
        out.sort_by(|a, b| (a.1["key"].as_str(), &a.0).cmp(&(b.1["key"].as_str(), &b.0)));
        out
    }

    /// Drop the uploads of a deleted bucket.
    pub(crate) fn abort_uploads_of(&self, bucket: &str) {
        for (id, u) in self.uploads(bucket) {
            let account = u["account"].as_str().unwrap_or_default();
            let key = u["key"].as_str().unwrap_or_default();
            // The bucket is gone, so `abort_upload`'s ownership check cannot pass: remove
            // the records directly.
            let parts = self.parts(&id);
            let mut ops = vec![berth_store::Op::Delete(upload_key(bucket, &id))];
            ops.extend(parts.iter().map(|p| berth_store::Op::Delete(p.key.clone())));
            if self.store.txn(&[], ops).is_ok() {
                for p in &parts {
                    let _ = std::fs::remove_file(self.object_path(&p.value));
                }
            } else {
                tracing::warn!(
                    bucket,
                    key,
                    account,
                    "could not remove an upload of a deleted bucket"
                );
            }
        }
    }
}

/// S3's composite checksum of a multipart object: the checksum of the parts' checksums,
/// then the part count; only when every part carried the upload's algorithm.
fn composite_checksum(upload: &Value, parts: &[Arc<Value>]) -> Option<(String, String)> {
    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
    let algorithm = upload["checksumAlgorithm"].as_str()?;
    let mut raw = vec![];
    for p in parts {
        raw.extend(B64.decode(p["checksums"][algorithm].as_str()?).ok()?);
    }
    let whole = match algorithm {
        "CRC32" => crc32fast::hash(&raw).to_be_bytes().to_vec(),
        "SHA256" => sha2::Sha256::digest(&raw).to_vec(),
        _ => return None,
    };
    Some((
        algorithm.to_string(),
        format!("{}-{}", B64.encode(whole), parts.len()),
    ))
}
