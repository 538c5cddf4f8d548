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
use berth_http::{blocking, empty, full, parse_range};

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
                    let body = reg
                        .blobs
                        .open(&d, start, len)
                        .await
                        .map_err(RegistryError::internal)?;
                    Ok(b.body(body).expect("response"))
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
                    let _writing = reg.writing_blobs();
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
    let _writing = reg.writing_blobs();
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

/// How many bytes of a request body are gathered before they are written and handed to
/// the hasher: a few of hyper's reads, so hashing starts early and hand-offs stay few.
const BATCH: usize = 256 << 10;

/// How many written bytes make the writer ask the kernel to start writing them back.
const WRITEBACK_STEP: u64 = 1 << 20;

/// Where a body's bytes go: the upload's data file, written on the receiving thread, and
/// the running hash, on a thread of its own. Hashing costs about as much CPU per byte as
/// receiving and writing together, so the two halves run side by side; a third thread
/// for writing measured slower on two cores (BENCHMARKS.md, Registry, session 7).
struct Sink {
    file: std::fs::File,
    written: u64,
    synced: u64,
    /// None once hashing stopped (no hash to continue, or the hasher is gone).
    hash_tx: Option<std::sync::mpsc::SyncSender<Arc<Vec<Bytes>>>>,
    hasher: Option<std::thread::JoinHandle<sha2::Sha256>>,
}

impl Sink {
    fn new(file: std::fs::File, start: u64, hash: Option<sha2::Sha256>) -> Sink {
        let (hash_tx, hasher) = match hash {
            Some(mut h) => {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Vec<Bytes>>>(16);
                let spawned = std::thread::Builder::new()
                    .name("blob-hasher".into())
                    .spawn(move || {
                        favour_this_thread();
                        for batch in rx {
                            for buf in batch.iter() {
                                sha2::Digest::update(&mut h, buf);
                            }
                        }
                        h
                    });
                match spawned {
                    Ok(thread) => (Some(tx), Some(thread)),
                    // The commit then reads the file back to hash it: slower, still right.
                    Err(e) => {
                        tracing::warn!(error = %e, "no thread to hash an upload as it arrives");
                        (None, None)
                    }
                }
            }
            None => (None, None),
        };
        Sink {
            file,
            written: start,
            synced: start,
            hash_tx,
            hasher,
        }
    }

    /// Hash and append one batch. On a write error the file's content is unknown, so
    /// hashing stops and the error is returned.
    fn push(&mut self, batch: Vec<Bytes>) -> std::io::Result<()> {
        use std::io::Write;
        let batch = Arc::new(batch);
        blocking(|| {
            if let Some(t) = &self.hash_tx {
                if t.send(batch.clone()).is_err() {
                    self.hash_tx = None;
                }
            }
            for buf in batch.iter() {
                if let Err(e) = self.file.write_all(buf) {
                    self.hash_tx = None;
                    return Err(e);
                }
                self.written += buf.len() as u64;
            }
            if self.written - self.synced >= WRITEBACK_STEP {
                start_writeback(&self.file, self.synced, self.written - self.synced);
                self.synced = self.written;
            }
            Ok(())
        })
    }

    /// The file's new size, and the hash of everything in it when every byte was hashed.
    fn finish(mut self) -> (u64, Option<sha2::Sha256>) {
        let complete = self.hash_tx.take().is_some();
        let hash = self.hasher.take().and_then(|t| blocking(|| t.join().ok()));
        (self.written, hash.filter(|_| complete))
    }
}

/// Stream a request body onto the end of upload `id`'s data file, hashing as it goes;
/// returns the new size. Batches are the body's own frames, never copied.
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
    let mut sink = Sink::new(file, start, reg.hashers.take(id, start));
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0;
    let mut failure = None;
    let mut io_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    pending_len += data.len();
                    pending.push(data);
                    if pending_len >= BATCH {
                        pending_len = 0;
                        if let Err(e) = sink.push(std::mem::take(&mut pending)) {
                            io_error = Some(e);
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
    if io_error.is_none() && !pending.is_empty() {
        io_error = sink.push(pending).err();
    }
    let (written, hash) = sink.finish();
    if let Some(h) = hash {
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

/// Raise the calling thread's scheduling priority (nice -10), where Berth may.
///
/// An upload is acknowledged only once its last byte is hashed, and SHA-256 costs about as
/// much CPU as receiving and writing together, so the hashing thread is the upload's
/// critical path. At equal priority the receiving side and the client, which wake often,
/// take turns on its core and it finishes several milliseconds after the last byte
/// arrives. Favoured, it keeps pace: 10% less time per 50 MiB on two cores, for a little
/// more latency to other requests during pushes (BENCHMARKS.md, Registry, session 8).
/// Without the privilege (CAP_SYS_NICE) the call fails and nothing changes.
fn favour_this_thread() {
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10);
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
