//! The OCI distribution API under `/v2/`: blobs (with ranges, monolithic and chunked
//! uploads, cross-repository mounts), manifests, tags, the catalog and referrers.

use crate::blobs::CommitError;
use crate::{Digest, Registry, RegistryError, Scope};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub use berth_http::Body;
use berth_http::{empty, full, parse_range, FileBody};

fn base() -> hyper::http::response::Builder {
    Response::builder().header("Docker-Distribution-API-Version", "registry/2.0")
}

fn error(e: &RegistryError) -> Response<Body> {
    let body = json!({"errors": [{"code": e.code, "message": e.message, "detail": {}}]});
    let mut b = base();
    if e.status == 401 {
        b = b.header("WWW-Authenticate", "Basic realm=\"Berth ECR\"");
    }
    b.status(e.status)
        .header("Content-Type", "application/json")
        .body(full(body.to_string()))
        .expect("valid response")
}

fn unsupported(what: &str) -> RegistryError {
    RegistryError::new(
        405,
        "UNSUPPORTED",
        format!("the operation is unsupported: {what}"),
    )
}

/// The account and region a registry host names: `ACCOUNT.dkr.ecr.REGION.localhost[:PORT]`
/// (or `.amazonaws.com`); anything else is the default account in us-east-1.
pub fn scope_from_host(host: Option<&str>, default_account: &str) -> Scope {
    let host = host
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default();
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() >= 5
        && parts[1] == "dkr"
        && parts[2] == "ecr"
        && parts[0].len() == 12
        && parts[0].bytes().all(|b| b.is_ascii_digit())
    {
        return Scope {
            account: parts[0].to_string(),
            region: parts[3].to_string(),
        };
    }
    Scope {
        account: default_account.to_string(),
        region: "us-east-1".to_string(),
    }
}

enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Uploads(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::Uploads(name));
    }
    if let Some(i) = rest.rfind("/blobs/uploads/") {
        return Some(Route::Upload(
            &rest[..i],
            &rest[i + "/blobs/uploads/".len()..],
        ));
    }
    if let Some(i) = rest.rfind("/manifests/") {
        return Some(Route::Manifest(
            &rest[..i],
            &rest[i + "/manifests/".len()..],
        ));
    }
    if let Some(i) = rest.rfind("/referrers/") {
        return Some(Route::Referrers(
            &rest[..i],
            &rest[i + "/referrers/".len()..],
        ));
    }
    if let Some(i) = rest.rfind("/blobs/") {
        return Some(Route::Blob(&rest[..i], &rest[i + "/blobs/".len()..]));
    }
    None
}

pub async fn handle(reg: Arc<Registry>, req: Request<Incoming>) -> Response<Body> {
    match handle_inner(&reg, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!(code = e.code, message = %e.message, "registry request failed");
            }
            error(&e)
        }
    }
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn check_name(name: &str) -> Result<(), RegistryError> {
    if crate::valid_repository_name(name) {
        Ok(())
    } else {
        Err(RegistryError::new(
            400,
            "NAME_INVALID",
            format!("invalid repository name {name:?}"),
        ))
    }
}

fn parse_digest(s: &str) -> Result<Digest, RegistryError> {
    Digest::parse(s)
        .ok_or_else(|| RegistryError::new(400, "DIGEST_INVALID", format!("invalid digest {s:?}")))
}

async fn handle_inner(
    reg: &Registry,
    req: Request<Incoming>,
) -> Result<Response<Body>, RegistryError> {
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let scope = scope_from_host(host.as_deref(), &reg.default_account);
    if reg.require_auth {
        authorize(reg, &req, &scope)?;
    }
    let path = req.uri().path().to_string();
    let q = query(&req);
    let method = req.method().clone();
    let Some(r) = route(&path) else {
        return Err(RegistryError::new(
            404,
            "NAME_UNKNOWN",
            format!("no registry route for {path}"),
        ));
    };
    match r {
        Route::Base => Ok(base()
            .status(200)
            .header("Content-Type", "application/json")
            .body(full("{}"))
            .expect("response")),
        Route::Catalog => {
            let names: Vec<String> = reg
                .repositories(&scope)
                .iter()
                .filter_map(|r| r.value["repositoryName"].as_str().map(str::to_string))
                .collect();
            let (page, link) = paginate(names, &q, "/v2/_catalog");
            let mut b = base()
                .status(200)
                .header("Content-Type", "application/json");
            if let Some(l) = link {
                b = b.header("Link", l);
            }
            Ok(b.body(full(json!({"repositories": page}).to_string()))
                .expect("response"))
        }
        Route::Tags(name) => {
            check_name(name)?;
            let tags = reg.tags(&scope, name)?;
            let (page, link) = paginate(tags, &q, &format!("/v2/{name}/tags/list"));
            let mut b = base()
                .status(200)
                .header("Content-Type", "application/json");
            if let Some(l) = link {
                b = b.header("Link", l);
            }
            Ok(
                b.body(full(json!({"name": name, "tags": page}).to_string()))
                    .expect("response"),
            )
        }
        Route::Manifest(name, reference) => {
            check_name(name)?;
            match method {
                Method::GET | Method::HEAD => {
                    let (digest, media, bytes) = reg.get_manifest(&scope, name, reference)?;
                    let b = base()
                        .status(200)
                        .header("Content-Type", media)
                        .header("Docker-Content-Digest", digest.to_string())
                        .header("Content-Length", bytes.len());
                    Ok(b.body(if method == Method::HEAD {
                        empty()
                    } else {
                        full(bytes)
                    })
                    .expect("response"))
                }
                Method::PUT => {
                    let ct = req
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let bytes =
                        http_body_util::Limited::new(req.into_body(), crate::MAX_MANIFEST_BYTES)
                            .collect()
                            .await
                            .map_err(|_| {
                                RegistryError::new(
                                    413,
                                    "MANIFEST_INVALID",
                                    "manifest is too large or its upload failed",
                                )
                            })?
                            .to_bytes();
                    let (digest, subject) =
                        reg.put_manifest(&scope, name, reference, ct.as_deref(), &bytes)?;
                    let mut b = base()
                        .status(201)
                        .header("Location", format!("/v2/{name}/manifests/{digest}"))
                        .header("Docker-Content-Digest", digest.to_string());
                    if let Some(s) = subject {
                        b = b.header("OCI-Subject", s);
                    }
                    Ok(b.body(empty()).expect("response"))
                }
                Method::DELETE => {
                    reg.delete_manifest(&scope, name, reference)?;
                    Ok(base().status(202).body(empty()).expect("response"))
                }
                _ => Err(unsupported("method on a manifest")),
            }
        }
        Route::Blob(name, digest) => {
            check_name(name)?;
            reg.repository(&scope, name)?;
            let d = parse_digest(digest)?;
            match method {
                Method::GET | Method::HEAD => {
                    let size = reg.blob_in_repo(&scope, name, &d).ok_or_else(|| {
                        RegistryError::new(
                            404,
                            "BLOB_UNKNOWN",
                            format!("blob unknown to registry: {d}"),
                        )
                    })?;
                    let range = req
                        .headers()
                        .get("range")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let (status, start, len) = match range {
                        None => (200, 0, size),
                        Some(r) => match parse_range(&r, size) {
                            Some((s, e)) => (206, s, e - s + 1),
                            None => {
                                return Ok(base()
                                    .status(416)
                                    .header("Content-Range", format!("bytes */{size}"))
                                    .body(empty())
                                    .expect("response"))
                            }
                        },
                    };
                    let mut b = base()
                        .status(status)
                        .header("Content-Type", "application/octet-stream")
                        .header("Docker-Content-Digest", d.to_string())
                        .header("Accept-Ranges", "bytes")
                        .header("Content-Length", len);
                    if status == 206 {
                        b = b.header(
                            "Content-Range",
                            format!("bytes {start}-{}/{size}", start + len - 1),
                        );
                    }
                    if method == Method::HEAD {
                        return Ok(b.body(empty()).expect("response"));
                    }
                    let f = FileBody::open(&reg.blobs.path(&d), start, len)
                        .await
                        .map_err(RegistryError::internal)?;
                    Ok(b.body(f.boxed()).expect("response"))
                }
                Method::DELETE => {
                    if !reg.remove_blob(&scope, name, &d)? {
                        return Err(RegistryError::new(
                            404,
                            "BLOB_UNKNOWN",
                            format!("blob unknown to registry: {d}"),
                        ));
                    }
                    Ok(base().status(202).body(empty()).expect("response"))
                }
                _ => Err(unsupported("method on a blob")),
            }
        }
        Route::Uploads(name) => {
            check_name(name)?;
            reg.repository(&scope, name)?;
            if method != Method::POST {
                return Err(unsupported("method on uploads"));
            }
            if let (Some(mount), Some(from)) = (q.get("mount"), q.get("from")) {
                let d = parse_digest(mount)?;
                if crate::valid_repository_name(from) {
                    if let Some(size) = reg.blob_in_repo(&scope, from, &d) {
                        reg.add_blob(&scope, name, &d, size)?;
                        return Ok(base()
                            .status(201)
                            .header("Location", format!("/v2/{name}/blobs/{d}"))
                            .header("Docker-Content-Digest", d.to_string())
                            .body(empty())
                            .expect("response"));
                    }
                }
                // Not mountable: fall back to a regular upload session, as the spec says.
            }
            let meta = reg.upload_meta(&scope, name);
            let id = reg
                .blobs
                .begin_upload(&meta)
                .map_err(RegistryError::internal)?;
            if let Some(digest) = q.get("digest") {
                let d = parse_digest(digest)?;
                let (data, _) = reg
                    .blobs
                    .upload_path(&id)
                    .ok_or_else(|| RegistryError::internal("upload vanished"))?;
                append_body(reg, &id, &data, req.into_body()).await?;
                return finish_upload(reg, &scope, name, &id, &d);
            }
            Ok(base()
                .status(202)
                .header("Location", format!("/v2/{name}/blobs/uploads/{id}"))
                .header("Range", "0-0")
                .header("Docker-Upload-UUID", &id)
                .header("Content-Length", 0)
                .body(empty())
                .expect("response"))
        }
        Route::Upload(name, id) => {
            check_name(name)?;
            let unknown = || {
                RegistryError::new(
                    404,
                    "BLOB_UPLOAD_UNKNOWN",
                    "blob upload unknown to registry",
                )
            };
            let (data, meta) = reg.blobs.upload_path(id).ok_or_else(unknown)?;
            let meta: Value = serde_json::from_str(&meta).unwrap_or(Value::Null);
            if meta["repo"] != name
                || meta["account"] != scope.account.as_str()
                || meta["region"] != scope.region.as_str()
            {
                return Err(unknown());
            }
            let size = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
            let progress = |size: u64| {
                base()
                    .header("Location", format!("/v2/{name}/blobs/uploads/{id}"))
                    .header("Range", format!("0-{}", size.saturating_sub(1)))
                    .header("Docker-Upload-UUID", id)
                    .header("Content-Length", 0)
            };
            match method {
                Method::GET => Ok(progress(size).status(204).body(empty()).expect("response")),
                Method::PATCH => {
                    if let Some(cr) = req
                        .headers()
                        .get("content-range")
                        .and_then(|v| v.to_str().ok())
                    {
                        let start = cr
                            .trim_start_matches("bytes ")
                            .split('-')
                            .next()
                            .and_then(|s| s.parse::<u64>().ok());
                        if start != Some(size) {
                            return Ok(progress(size).status(416).body(empty()).expect("response"));
                        }
                    }
                    let size = append_body(reg, id, &data, req.into_body()).await?;
                    Ok(progress(size).status(202).body(empty()).expect("response"))
                }
                Method::PUT => {
                    let d = parse_digest(q.get("digest").map(String::as_str).unwrap_or_default())?;
                    append_body(reg, id, &data, req.into_body()).await?;
                    finish_upload(reg, &scope, name, id, &d)
                }
                Method::DELETE => {
                    reg.hashers.forget(id);
                    reg.blobs.cancel_upload(id).map_err(|_| unknown())?;
                    Ok(base().status(204).body(empty()).expect("response"))
                }
                _ => Err(unsupported("method on an upload")),
            }
        }
        Route::Referrers(name, digest) => {
            check_name(name)?;
            let d = parse_digest(digest)?;
            let mut refs = reg.referrers(&scope, name, &d)?;
            let mut b = base()
                .status(200)
                .header("Content-Type", crate::manifest::OCI_INDEX);
            if let Some(at) = q.get("artifactType") {
                refs.retain(|r| r["artifactType"] == at.as_str());
                b = b.header("OCI-Filters-Applied", "artifactType");
            }
            let index = json!({"schemaVersion": 2, "mediaType": crate::manifest::OCI_INDEX, "manifests": refs});
            Ok(b.body(full(index.to_string())).expect("response"))
        }
    }
}

/// Basic auth with user `AWS` and a GetAuthorizationToken token for this account.
fn authorize(reg: &Registry, req: &Request<Incoming>, scope: &Scope) -> Result<(), RegistryError> {
    use base64::Engine;
    let denied = || {
        RegistryError::new(401, "UNAUTHORIZED", "authentication required: use `aws ecr get-login-password` as the password for user AWS")
    };
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(denied)?;
    let encoded = header.strip_prefix("Basic ").ok_or_else(denied)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| denied())?;
    let text = String::from_utf8(decoded).map_err(|_| denied())?;
    let (user, token) = text.split_once(':').ok_or_else(denied)?;
    if user != "AWS" {
        return Err(denied());
    }
    match crate::token::verify(&reg.token_secret, token, reg.clock.now()) {
        Some(account) if account == scope.account => Ok(()),
        _ => Err(denied()),
    }
}

/// Verify and store a finished upload, then make the blob readable from `repo`.
fn finish_upload(
    reg: &Registry,
    scope: &Scope,
    repo: &str,
    id: &str,
    d: &Digest,
) -> Result<Response<Body>, RegistryError> {
    let len = reg
        .blobs
        .upload_path(id)
        .and_then(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len());
    let known = len.and_then(|len| reg.hashers.finish(id, len));
    let size = match reg.blobs.commit_upload(id, d, known) {
        Ok(s) => s,
        Err(CommitError::UnknownUpload) => {
            return Err(RegistryError::new(
                404,
                "BLOB_UPLOAD_UNKNOWN",
                "blob upload unknown to registry",
            ))
        }
        Err(CommitError::DigestMismatch { actual }) => {
            return Err(RegistryError::new(
                400,
                "DIGEST_INVALID",
                format!("provided digest {d} does not match uploaded content {actual}"),
            ))
        }
        Err(CommitError::Io(e)) => return Err(RegistryError::internal(e)),
    };
    reg.add_blob(scope, repo, d, size)?;
    Ok(base()
        .status(201)
        .header("Location", format!("/v2/{repo}/blobs/{d}"))
        .header("Docker-Content-Digest", d.to_string())
        .header("Content-Length", 0)
        .body(empty())
        .expect("response"))
}

/// How many bytes of a request body are gathered before a write: large writes, few hops.
const WRITE_BATCH: usize = 1 << 20;

/// Stream a request body onto the end of upload `id`'s data file, hashing as it goes;
/// returns the new size. Receiving runs ahead of writing: a blocking thread writes and
/// hashes each batch while the next one arrives.
async fn append_body(
    reg: &Registry,
    id: &str,
    path: &std::path::Path,
    mut body: Incoming,
) -> Result<u64, RegistryError> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(RegistryError::internal)?;
    let start = file.metadata().map_err(RegistryError::internal)?.len();
    let hasher = reg.hashers.take(id, start);
    // Writing (a kernel copy into the page cache) and hashing each take a core's worth
    // of time per byte: they run on two threads, each fed the same batches.
    // A batch is the body's own frames (no copy), handed over once it holds a megabyte.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(4);
    let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<Arc<Vec<Bytes>>>(4);
    let hashing = hasher.map(|mut h| {
        std::thread::spawn(move || {
            for batch in hash_rx {
                for buf in batch.iter() {
                    sha2::Digest::update(&mut h, buf);
                }
            }
            h
        })
    });
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut file = file;
        let mut written = start;
        let mut hash_tx = Some(hash_tx);
        while let Some(batch) = rx.blocking_recv() {
            if let Some(t) = &hash_tx {
                if t.send(batch.clone()).is_err() {
                    hash_tx = None;
                }
            }
            let batch_start = written;
            for buf in batch.iter() {
                if let Err(e) = file.write_all(buf) {
                    // What reached the file is unknown: hash it again at commit.
                    return (written, false, Some(e));
                }
                written += buf.len() as u64;
            }
            start_writeback(&file, batch_start, written - batch_start);
        }
        (written, hash_tx.is_some(), None)
    });
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0;
    let mut failure = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    pending_len += data.len();
                    pending.push(data);
                    if pending_len >= WRITE_BATCH {
                        pending_len = 0;
                        if tx
                            .send(Arc::new(std::mem::take(&mut pending)))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                failure = Some(RegistryError::new(
                    400,
                    "BLOB_UPLOAD_INVALID",
                    format!("upload interrupted: {e}"),
                ));
                break;
            }
        }
    }
    // Keep what arrived even if the body was cut short: the client may resume from it.
    if !pending.is_empty() {
        let _ = tx.send(Arc::new(pending)).await;
    }
    drop(tx);
    let (written, hashed_all, io_error) = writer.await.map_err(RegistryError::internal)?;
    // The hasher's channel closed with the writer, so it finishes now.
    let hasher = hashing.and_then(|t| t.join().ok());
    if let (Some(h), true) = (hasher, hashed_all) {
        reg.hashers.put(id, written, h);
    }
    if let Some(e) = io_error {
        return Err(RegistryError::internal(e));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

/// Ask the kernel to start writing `len` bytes at `offset` to disk now, without waiting,
/// so the fsync at commit finds little left to do. Advisory: errors surface at fsync.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor and an in-range span; the call only schedules I/O.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// `n` and `last` pagination with a Link header for the next page.
fn paginate(
    mut items: Vec<String>,
    q: &HashMap<String, String>,
    path: &str,
) -> (Vec<String>, Option<String>) {
    items.sort();
    if let Some(last) = q.get("last") {
        items.retain(|i| i > last);
    }
    match q.get("n").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if items.len() > n => {
            items.truncate(n);
            let last = items.last().cloned().unwrap_or_default();
            (
                items,
                Some(format!("<{path}?n={n}&last={last}>; rel=\"next\"")),
            )
        }
        _ => (items, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn routes() {
        assert!(matches!(route("/v2/"), Some(Route::Base)));
        assert!(matches!(
            route("/v2/team/web/manifests/latest"),
            Some(Route::Manifest("team/web", "latest"))
        ));
        assert!(matches!(
            route("/v2/web/blobs/uploads/"),
            Some(Route::Uploads("web"))
        ));
        assert!(matches!(
            route("/v2/web/blobs/uploads/abc"),
            Some(Route::Upload("web", "abc"))
        ));
        assert!(matches!(
            route("/v2/web/tags/list"),
            Some(Route::Tags("web"))
        ));
        assert!(matches!(
            route("/v2/a/b/blobs/sha256:x"),
            Some(Route::Blob("a/b", "sha256:x"))
        ));
    }
    #[test]
    fn hosts() {
        let s = scope_from_host(
            Some("123456789012.dkr.ecr.eu-west-1.localhost:4566"),
            "000000000000",
        );
        assert_eq!(
            (s.account.as_str(), s.region.as_str()),
            ("123456789012", "eu-west-1")
        );
        let s = scope_from_host(Some("localhost:4566"), "000000000000");
        assert_eq!(
            (s.account.as_str(), s.region.as_str()),
            ("000000000000", "us-east-1")
        );
    }
}
