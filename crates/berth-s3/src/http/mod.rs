//! S3's REST API (rest-xml): works out the bucket and key (path-style, or the bucket in a
//! `*.localhost` Host), identifies the operation from botocore's model, and serves it.
//! Object bodies stream to and from files; an operation Berth does not serve yet answers
//! 501 NotImplemented naming it.

mod multipart;

use crate::list::{list_objects, resume_after};
use crate::ops::{self, Target};
use crate::xml::{self, Writer};
use crate::{ObjectMeta, S3Error, Staged, MAX_KEY, MAX_OBJECT, S3};
use base64::Engine;
use berth_http::{empty, full, parse_range, Body, FileBody};
use berth_wire::RequestContext;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method, Response};
use md5::Digest;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Largest XML request body read (a DeleteObjects of 1,000 long keys fits).
const MAX_XML_BODY: usize = 4 * 1024 * 1024;
/// Headers stored with an object and returned by GetObject and HeadObject.
const STORED_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// Serve one S3 request; the edge has already checked its signature (if enforced).
pub async fn handle(
    s3: Arc<S3>,
    parts: Parts,
    body: Incoming,
    ctx: RequestContext,
) -> Response<Body> {
    let head = parts.method == Method::HEAD;
    let response = match serve(&s3, &parts, body, &ctx).await {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 && e.status != 501 {
                tracing::warn!(code = e.code, message = %e.message, "S3 request failed");
            }
            error_response(&e, &ctx.request_id, head)
        }
    };
    with_request_id(response, &ctx.request_id)
}

fn with_request_id(mut r: Response<Body>, id: &str) -> Response<Body> {
    if let Ok(v) = id.parse() {
        r.headers_mut().insert("x-amz-request-id", v);
    }
    r
}

/// The error document AWS sends (no body for HEAD, which cannot have one).
pub fn error_response(e: &S3Error, request_id: &str, head: bool) -> Response<Body> {
    let b = Response::builder().status(e.status);
    if head {
        return with_request_id(b.body(empty()).expect("response"), request_id);
    }
    let mut w = Writer::bare("Error");
    w.elem("Code", e.code).elem("Message", &e.message);
    for (name, value) in &e.resource {
        w.elem(name, value);
    }
    w.elem("RequestId", request_id);
    with_request_id(
        b.header("content-type", "application/xml")
            .body(full(w.finish("Error")))
            .expect("response"),
        request_id,
    )
}

fn xml_response(status: u16, doc: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(full(doc))
        .expect("response")
}

fn not_implemented(op: &str) -> S3Error {
    S3Error::new(
        501,
        "NotImplemented",
        format!("{op} is not implemented in Berth's S3 service yet"),
    )
}

/// A bucket named by a `*.localhost` Host: `BUCKET.localhost`, `BUCKET.s3.localhost` or
/// `BUCKET.s3.REGION.localhost`. `s3.localhost` and other hosts are path-style.
pub fn host_bucket(host: &str) -> Option<String> {
    let name = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let stem = name.strip_suffix(".localhost")?;
    let labels: Vec<&str> = stem.split('.').collect();
    match labels.iter().rposition(|l| *l == "s3") {
        Some(0) => None,
        Some(i) => Some(labels[..i].join(".")),
        None => Some(stem.to_string()),
    }
}

/// Percent-decoding of a URI path (a `+` stays a `+`).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// S3's `encoding-type=url`: every byte but unreserved characters and `/` as `%XX`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// (bucket, key) from the Host and the path.
fn locate(parts: &Parts) -> Result<(Option<String>, Option<String>), S3Error> {
    let bad = || S3Error::invalid_argument("The request path is not valid percent-encoded UTF-8");
    let path = parts.uri.path();
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or(parts.uri.host());
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = match host.and_then(host_bucket) {
        Some(b) => (Some(b), Some(rest)),
        None => match rest.split_once('/') {
            Some((b, k)) => (Some(percent_decode(b).ok_or_else(bad)?), Some(k)),
            None => ((!rest.is_empty()).then(|| rest.to_string()), None),
        },
    };
    let key = match key.filter(|k| !k.is_empty()) {
        Some(k) => Some(percent_decode(k).ok_or_else(bad)?),
        None => None,
    };
    Ok((bucket.filter(|b| !b.is_empty()), key))
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn serve(
    s3: &Arc<S3>,
    parts: &Parts,
    body: Incoming,
    ctx: &RequestContext,
) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = locate(parts)?;
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let target = match (&bucket, &key) {
        (None, _) => Target::Service,
        (Some(_), None) => Target::Bucket,
        (Some(_), Some(_)) => Target::Object,
    };
    let op = ops::identify(parts.method.as_str(), target, &query, |h| {
        parts.headers.contains_key(h)
    })
    .ok_or_else(|| {
        S3Error::new(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )
    })?;
    let account = ctx.account.as_str();
    let bucket = bucket.unwrap_or_default();
    let key = key.unwrap_or_default();
    if key.len() > MAX_KEY {
        return Err(S3Error::new(400, "KeyTooLongError", "Your key is too long"));
    }
    match op {
        "ListBuckets" => Ok(list_buckets(s3, account, &query)),
        "CreateBucket" => {
            let body = read_xml_body(parts, body).await?;
            let location = if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                let doc = xml::parse(&body).ok_or_else(S3Error::malformed_xml)?;
                if doc.name != "CreateBucketConfiguration" {
                    return Err(S3Error::malformed_xml());
                }
                if doc.child("Location").is_some() || doc.child("Bucket").is_some() {
                    return Err(not_implemented("CreateBucket of a directory bucket"));
                }
                doc.child("LocationConstraint").map(|l| l.text.clone())
            };
            if header(parts, "x-amz-bucket-object-lock-enabled") == Some("true") {
                return Err(not_implemented("S3 Object Lock"));
            }
            let (s3c, region, account, name) = (
                s3.clone(),
                ctx.region.clone(),
                account.to_string(),
                bucket.clone(),
            );
            blocking(move || s3c.create_bucket(&account, &region, &name, location.as_deref()))
                .await?;
            Ok(Response::builder()
                .header("location", format!("/{bucket}"))
                .body(empty())
                .expect("response"))
        }
        "HeadBucket" => {
            let b = s3.owned_bucket(account, &bucket)?;
            Ok(Response::builder()
                .header(
                    "x-amz-bucket-region",
                    b.value["region"].as_str().unwrap_or("us-east-1"),
                )
                .body(empty())
                .expect("response"))
        }
        "GetBucketLocation" => {
            let b = s3.owned_bucket(account, &bucket)?;
            let region = b.value["region"].as_str().unwrap_or("us-east-1");
            let mut out = String::new();
            if region != "us-east-1" {
                xml::escape(region, &mut out);
            }
            let doc = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{}\">{out}</LocationConstraint>",
                xml::NAMESPACE
            );
            Ok(xml_response(200, doc.into_bytes()))
        }
        "DeleteBucket" => {
            let (s3c, account) = (s3.clone(), account.to_string());
            blocking(move || s3c.delete_bucket(&account, &bucket)).await?;
            Ok(Response::builder()
                .status(204)
                .body(empty())
                .expect("response"))
        }
        "ListObjects" | "ListObjectsV2" => {
            s3.owned_bucket(account, &bucket)?;
            list(s3, account, &bucket, &query, op == "ListObjectsV2")
        }
        "PutObject" => put_object(s3, parts, body, account, &bucket, &key).await,
        "CopyObject" => copy_object(s3, parts, account, &bucket, &key).await,
        "GetObject" | "HeadObject" => get_object(s3, parts, &query, account, &bucket, &key).await,
        "DeleteObject" => {
            if query.contains_key("versionId") {
                return Err(not_implemented("DeleteObject of a version"));
            }
            let (s3c, account) = (s3.clone(), account.to_string());
            blocking(move || s3c.delete_object(&account, &bucket, &key)).await?;
            Ok(Response::builder()
                .status(204)
                .body(empty())
                .expect("response"))
        }
        "DeleteObjects" => delete_objects(s3, parts, body, account, &bucket).await,
        "CreateMultipartUpload" => multipart::create(s3, parts, (account, &bucket, &key)).await,
        "UploadPart" => {
            multipart::upload_part(s3, parts, body, &query, (account, &bucket, &key)).await
        }
        "UploadPartCopy" => {
            multipart::upload_part_copy(s3, parts, &query, (account, &bucket, &key)).await
        }
        "CompleteMultipartUpload" => {
            multipart::complete(s3, parts, body, &query, (account, &bucket, &key)).await
        }
        "AbortMultipartUpload" => multipart::abort(s3, &query, (account, &bucket, &key)).await,
        "ListParts" => multipart::list_parts(s3, &query, (account, &bucket, &key)),
        "ListMultipartUploads" => multipart::list_uploads(s3, &query, account, &bucket),
        other => Err(not_implemented(other)),
    }
}

/// Run a store write (it waits for an fsync) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, S3Error> + Send + 'static,
) -> Result<T, S3Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(S3Error::internal)?
}

/// The declared SHA-256 of the payload, when the client signed one.
fn declared_sha256(parts: &Parts) -> Result<Option<[u8; 32]>, S3Error> {
    match header(parts, "x-amz-content-sha256") {
        None | Some("UNSIGNED-PAYLOAD") => Ok(None),
        Some(v) if v.starts_with("STREAMING-") => {
            Err(not_implemented("A streaming (aws-chunked) payload"))
        }
        Some(v) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(v, &mut out).map_err(|_| {
                S3Error::new(
                    400,
                    "InvalidArgument",
                    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a valid sha256 value.",
                )
            })?;
            Ok(Some(out))
        }
    }
}

fn sha256_mismatch() -> S3Error {
    S3Error::new(
        400,
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
}

/// A small request body (XML), checked against its declared SHA-256 and Content-MD5.
async fn read_xml_body(parts: &Parts, body: Incoming) -> Result<Bytes, S3Error> {
    let declared = declared_sha256(parts)?;
    let bytes = Limited::new(body, MAX_XML_BODY)
        .collect()
        .await
        .map_err(|_| S3Error::new(400, "MaxMessageLengthExceeded", "Your request was too big."))?
        .to_bytes();
    if let Some(d) = declared {
        if sha2::Sha256::digest(&bytes)[..] != d[..] {
            return Err(sha256_mismatch());
        }
    }
    if let Some(m) = content_md5(parts)? {
        if md5::Md5::digest(&bytes)[..] != m[..] {
            return Err(bad_md5());
        }
    }
    Checksum::from_headers(&parts.headers)?
        .map(|c| c.verify(&bytes))
        .transpose()?;
    Ok(bytes)
}

fn bad_md5() -> S3Error {
    S3Error::new(
        400,
        "BadDigest",
        "The Content-MD5 you specified did not match what we received.",
    )
}

fn content_md5(parts: &Parts) -> Result<Option<[u8; 16]>, S3Error> {
    let Some(v) = header(parts, "content-md5") else {
        return Ok(None);
    };
    B64.decode(v)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Some)
        .ok_or_else(|| {
            S3Error::new(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified is not valid.",
            )
        })
}

/// A flexible checksum (`x-amz-checksum-*`) the client sent with a body.
struct Checksum {
    algorithm: &'static str,
    value: String,
}

impl Checksum {
    fn from_headers(h: &HeaderMap) -> Result<Option<Checksum>, S3Error> {
        for (name, algorithm) in [
            ("x-amz-checksum-crc32", "CRC32"),
            ("x-amz-checksum-sha256", "SHA256"),
        ] {
            if let Some(v) = h.get(name).and_then(|v| v.to_str().ok()) {
                return Ok(Some(Checksum {
                    algorithm,
                    value: v.to_string(),
                }));
            }
        }
        for name in [
            "x-amz-checksum-crc32c",
            "x-amz-checksum-crc64nvme",
            "x-amz-checksum-sha1",
        ] {
            if h.contains_key(name) {
                return Err(not_implemented(&format!(
                    "Verifying {name} (Berth verifies CRC32 and SHA256)"
                )));
            }
        }
        Ok(None)
    }
    fn encode(&self, crc32: Option<u32>, sha256: Option<&[u8]>) -> Option<String> {
        match self.algorithm {
            "CRC32" => crc32.map(|c| B64.encode(c.to_be_bytes())),
            _ => sha256.map(|s| B64.encode(s)),
        }
    }
    fn check(&self, computed: Option<String>) -> Result<(), S3Error> {
        if computed.as_deref() == Some(self.value.as_str()) {
            Ok(())
        } else {
            Err(S3Error::new(
                400,
                "BadDigest",
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    self.algorithm
                ),
            ))
        }
    }
    fn verify(&self, bytes: &[u8]) -> Result<(), S3Error> {
        let crc = crc32fast::hash(bytes);
        let sha = sha2::Sha256::digest(bytes);
        self.check(self.encode(Some(crc), Some(&sha)))
    }
}

/// What receiving a body computed.
struct Received {
    size: u64,
    md5: [u8; 16],
    sha256: Option<[u8; 32]>,
    crc32: Option<u32>,
}

/// Stream a request body into `path` (then fsync it), computing MD5 and, when asked,
/// SHA-256 and CRC32 on the writing thread as the batches arrive.
async fn receive(
    path: std::path::PathBuf,
    mut body: Incoming,
    want_sha256: bool,
    want_crc32: bool,
) -> Result<Received, S3Error> {
    use std::io::Write;
    let file = std::fs::File::create(&path).map_err(S3Error::internal)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<Received> {
        let mut file = file;
        let mut md5 = md5::Md5::new();
        let mut sha = want_sha256.then(sha2::Sha256::new);
        let mut crc = want_crc32.then(crc32fast::Hasher::new);
        let mut size = 0u64;
        while let Some(batch) = rx.blocking_recv() {
            for buf in &batch {
                md5.update(buf);
                if let Some(s) = &mut sha {
                    s.update(buf);
                }
                if let Some(c) = &mut crc {
                    c.update(buf);
                }
                file.write_all(buf)?;
                size += buf.len() as u64;
            }
        }
        file.sync_all()?;
        Ok(Received {
            size,
            md5: md5.finalize().into(),
            sha256: sha.map(|s| s.finalize().into()),
            crc32: crc.map(|c| c.finalize()),
        })
    });
    let mut pending = vec![];
    let mut pending_len = 0;
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    pending_len += data.len();
                    pending.push(data);
                    if pending_len >= 1 << 20 {
                        pending_len = 0;
                        if tx.send(std::mem::take(&mut pending)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if !pending.is_empty() {
        let _ = tx.send(pending).await;
    }
    drop(tx);
    let written = writer.await.map_err(S3Error::internal)?;
    if failed {
        return Err(S3Error::new(
            400,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header",
        ));
    }
    written.map_err(S3Error::internal)
}

/// The object metadata a PutObject, CreateMultipartUpload or replacing CopyObject sends in
/// its headers (user metadata within AWS's 2 KB).
pub(crate) fn meta_from_headers(parts: &Parts) -> Result<ObjectMeta, S3Error> {
    let mut meta = ObjectMeta {
        content_type: header(parts, "content-type").map(str::to_string),
        ..Default::default()
    };
    for name in STORED_HEADERS {
        if let Some(v) = header(parts, name) {
            meta.headers.push((name.to_string(), v.to_string()));
        }
    }
    for (name, v) in &parts.headers {
        if let Some(user) = name.as_str().strip_prefix("x-amz-meta-") {
            if let Ok(v) = v.to_str() {
                meta.user.push((user.to_string(), v.to_string()));
            }
        }
    }
    if meta
        .user
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        > 2048
    {
        return Err(S3Error::new(
            400,
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size",
        ));
    }
    Ok(meta)
}

async fn put_object(
    s3: &Arc<S3>,
    parts: &Parts,
    body: Incoming,
    account: &str,
    bucket: &str,
    key: &str,
) -> Result<Response<Body>, S3Error> {
    s3.owned_bucket(account, bucket)?;
    let mut meta = meta_from_headers(parts)?;
    let (staged, verified) = receive_checked(s3, parts, body, MAX_OBJECT).await?;
    meta.checksums.extend(verified.clone());
    let (s3c, account, bucket, key) = (
        s3.clone(),
        account.to_string(),
        bucket.to_string(),
        key.to_string(),
    );
    let obj = blocking(move || s3c.put_object(&account, &bucket, &key, staged, meta)).await?;
    Ok(
        with_checksum(Response::builder().header("etag", etag(&obj)), verified)
            .body(empty())
            .expect("response"),
    )
}

/// A verified checksum echoed back, as S3 answers an upload that sent one.
pub(crate) fn with_checksum(
    b: hyper::http::response::Builder,
    verified: Option<(String, String)>,
) -> hyper::http::response::Builder {
    match verified {
        Some((algorithm, value)) => b.header(
            format!("x-amz-checksum-{}", algorithm.to_ascii_lowercase()),
            value,
        ),
        None => b,
    }
}

/// Receive an upload's body (at most `max` bytes, as its Content-Length says) into a
/// staged file and check it against every digest the client declared (x-amz-content-sha256,
/// Content-MD5, x-amz-checksum-*). Returns the staged bytes and the verified checksum;
/// nothing is left behind when a check fails.
pub(crate) async fn receive_checked(
    s3: &S3,
    parts: &Parts,
    body: Incoming,
    max: u64,
) -> Result<(Staged, Option<(String, String)>), S3Error> {
    if header(parts, "content-encoding").is_some_and(|e| e.contains("aws-chunked")) {
        return Err(not_implemented("A streaming (aws-chunked) payload"));
    }
    let length: u64 = header(parts, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            S3Error::new(
                411,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header.",
            )
        })?;
    if length > max {
        return Err(S3Error::new(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
        ));
    }
    let declared = declared_sha256(parts)?;
    let md5_header = content_md5(parts)?;
    let checksum = Checksum::from_headers(&parts.headers)?;
    let path = s3.staging_path();
    let want_crc = checksum.as_ref().is_some_and(|c| c.algorithm == "CRC32");
    let want_sha = declared.is_some() || checksum.as_ref().is_some_and(|c| c.algorithm == "SHA256");
    let checked = match receive(path.clone(), body, want_sha, want_crc).await {
        Ok(got) => (|| {
            if got.size != length {
                return Err(S3Error::new(
                    400,
                    "IncompleteBody",
                    "You did not provide the number of bytes specified by the Content-Length HTTP header",
                ));
            }
            if declared.is_some() && declared != got.sha256 {
                return Err(sha256_mismatch());
            }
            if md5_header.is_some_and(|m| m != got.md5) {
                return Err(bad_md5());
            }
            let verified = match &checksum {
                Some(c) => {
                    let computed = c.encode(got.crc32, got.sha256.as_ref().map(|s| &s[..]));
                    c.check(computed.clone())?;
                    Some((c.algorithm.to_string(), computed.unwrap_or_default()))
                }
                None => None,
            };
            Ok((got, verified))
        })(),
        Err(e) => Err(e),
    };
    match checked {
        Ok((got, verified)) => Ok((
            Staged {
                path,
                size: got.size,
                md5: got.md5,
            },
            verified,
        )),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

fn etag(obj: &Value) -> String {
    format!("\"{}\"", obj["etag"].as_str().unwrap_or_default())
}

fn system_time(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis((secs * 1000.0).max(0.0) as u64)
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The HTTP conditions of a read: Some(status) when one stops it (304 or 412).
fn precondition(parts: &Parts, obj: &Value) -> Option<u16> {
    let tag = etag(obj);
    let modified = whole_seconds(system_time(obj["lastModified"].as_f64().unwrap_or(0.0)));
    let matches = |list: &str| {
        list.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t == tag || t.trim_matches('"') == tag.trim_matches('"'))
    };
    let date = |name: &str| {
        header(parts, name)
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(whole_seconds)
    };
    if let Some(m) = header(parts, "if-match") {
        if !matches(m) {
            return Some(412);
        }
    } else if date("if-unmodified-since").is_some_and(|d| modified > d) {
        return Some(412);
    }
    if let Some(m) = header(parts, "if-none-match") {
        if matches(m) {
            return Some(304);
        }
    } else if date("if-modified-since").is_some_and(|d| modified <= d) {
        return Some(304);
    }
    None
}

async fn get_object(
    s3: &Arc<S3>,
    parts: &Parts,
    query: &HashMap<String, String>,
    account: &str,
    bucket: &str,
    key: &str,
) -> Result<Response<Body>, S3Error> {
    if query.contains_key("versionId") || query.contains_key("partNumber") {
        return Err(not_implemented("Reading an object version or part"));
    }
    let head = parts.method == Method::HEAD;
    // The object may be replaced between reading its record and opening its file (whose
    // old name is then gone): read the record again.
    for _ in 0..3 {
        let obj = s3.object(account, bucket, key)?;
        let size = obj["size"].as_u64().unwrap_or(0);
        let modified = system_time(obj["lastModified"].as_f64().unwrap_or(0.0));
        let mut b = Response::builder()
            .header("etag", etag(&obj))
            .header("last-modified", httpdate::fmt_http_date(modified))
            .header("accept-ranges", "bytes");
        match precondition(parts, &obj) {
            Some(304) => {
                return Ok(b.status(304).body(empty()).expect("response"));
            }
            Some(_) => {
                return Err(S3Error::new(
                    412,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                ));
            }
            None => {}
        }
        let (status, start, len) = match header(parts, "range") {
            None => (200, 0, size),
            Some(r) => match parse_range(r, size) {
                Some((s, e)) => (206, s, e - s + 1),
                None => {
                    let mut e = S3Error::new(
                        416,
                        "InvalidRange",
                        "The requested range is not satisfiable",
                    );
                    e.resource.push(("ActualObjectSize", size.to_string()));
                    return Err(e);
                }
            },
        };
        b = b.status(status).header("content-length", len).header(
            "content-type",
            obj["contentType"].as_str().unwrap_or("binary/octet-stream"),
        );
        if status == 206 {
            b = b.header(
                "content-range",
                format!("bytes {start}-{}/{size}", start + len - 1),
            );
        }
        for (name, v) in obj["headers"].as_object().into_iter().flatten() {
            b = b.header(name.as_str(), v.as_str().unwrap_or_default());
        }
        for (name, v) in obj["metadata"].as_object().into_iter().flatten() {
            b = b.header(format!("x-amz-meta-{name}"), v.as_str().unwrap_or_default());
        }
        if status == 200 && header(parts, "x-amz-checksum-mode") == Some("ENABLED") {
            for (algorithm, v) in obj["checksums"].as_object().into_iter().flatten() {
                b = b.header(
                    format!("x-amz-checksum-{}", algorithm.to_ascii_lowercase()),
                    v.as_str().unwrap_or_default(),
                );
            }
        }
        // response-content-type and its siblings override what is stored, as in AWS.
        for (param, name) in [
            ("response-content-type", "content-type"),
            ("response-content-language", "content-language"),
            ("response-expires", "expires"),
            ("response-cache-control", "cache-control"),
            ("response-content-disposition", "content-disposition"),
            ("response-content-encoding", "content-encoding"),
        ] {
            if let Some(v) = query.get(param) {
                if let Some(h) = b.headers_mut() {
                    if let Ok(v) = v.parse() {
                        h.insert(name, v);
                    }
                }
            }
        }
        if head {
            return Ok(b.body(empty()).expect("response"));
        }
        match FileBody::open(&s3.object_path(&obj), start, len).await {
            Ok(f) => return Ok(b.body(f.boxed()).expect("response")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(S3Error::internal(e)),
        }
    }
    Err(S3Error::no_such_key(key))
}

/// The bucket and key `x-amz-copy-source` names (`bucket/key`, percent-encoded, maybe
/// with a leading `/`; only the null version).
fn copy_source(parts: &Parts) -> Result<(String, String), S3Error> {
    let raw = header(parts, "x-amz-copy-source").unwrap_or_default();
    let (source, version) = raw.split_once("?versionId=").unwrap_or((raw, ""));
    if !version.is_empty() && version != "null" {
        return Err(not_implemented("Copying an object version"));
    }
    let source = percent_decode(source.strip_prefix('/').unwrap_or(source));
    source
        .as_deref()
        .and_then(|s| s.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .map(|(b, k)| (b.to_string(), k.to_string()))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            )
        })
}

/// `len` bytes of the file `src` from `start`, staged (with their MD5) as a new body.
async fn receive_into(
    s3: &S3,
    src: &std::path::Path,
    start: u64,
    len: u64,
) -> Result<Staged, S3Error> {
    let (src, path) = (src.to_path_buf(), s3.staging_path());
    let staged = path.clone();
    let copied = tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 16]> {
        use std::io::{Read, Seek, Write};
        let mut from = std::fs::File::open(src)?;
        from.seek(std::io::SeekFrom::Start(start))?;
        let mut from = from.take(len);
        let mut out = std::fs::File::create(&path)?;
        let mut md5 = md5::Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.sync_all()?;
        Ok(md5.finalize().into())
    })
    .await
    .map_err(S3Error::internal)?;
    match copied {
        Ok(md5) => Ok(Staged {
            path: staged,
            size: len,
            md5,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            Err(S3Error::internal(e))
        }
    }
}

async fn copy_object(
    s3: &Arc<S3>,
    parts: &Parts,
    account: &str,
    bucket: &str,
    key: &str,
) -> Result<Response<Body>, S3Error> {
    if parts
        .headers
        .keys()
        .any(|h| h.as_str().starts_with("x-amz-copy-source-if-"))
    {
        return Err(not_implemented(
            "CopyObject with x-amz-copy-source-if-* conditions",
        ));
    }
    let (src_bucket, src_key) = copy_source(parts)?;
    let (src_bucket, src_key) = (src_bucket.as_str(), src_key.as_str());
    let replace = match header(parts, "x-amz-metadata-directive").unwrap_or("COPY") {
        "COPY" => None,
        "REPLACE" => Some(meta_from_headers(parts)?),
        _ => return Err(S3Error::invalid_argument("Unknown metadata directive.")),
    };
    if replace.is_none() && src_bucket == bucket && src_key == key {
        return Err(S3Error::new(
            400,
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let (s3c, account, src_bucket, src_key, bucket, key) = (
        s3.clone(),
        account.to_string(),
        src_bucket.to_string(),
        src_key.to_string(),
        bucket.to_string(),
        key.to_string(),
    );
    let obj = blocking(move || {
        s3c.copy_object(&account, (&src_bucket, &src_key), (&bucket, &key), replace)
    })
    .await?;
    let mut w = Writer::new("CopyObjectResult");
    w.elem(
        "LastModified",
        &berth_wire::time::format_iso8601(obj["lastModified"].as_f64().unwrap_or(0.0)),
    )
    .elem("ETag", &etag(&obj));
    Ok(xml_response(200, w.finish("CopyObjectResult")))
}

async fn delete_objects(
    s3: &Arc<S3>,
    parts: &Parts,
    body: Incoming,
    account: &str,
    bucket: &str,
) -> Result<Response<Body>, S3Error> {
    s3.owned_bucket(account, bucket)?;
    let has_checksum = parts.headers.contains_key("content-md5")
        || parts
            .headers
            .keys()
            .any(|h| h.as_str().starts_with("x-amz-checksum-"));
    if !has_checksum {
        return Err(S3Error::new(
            400,
            "InvalidRequest",
            "Missing required header for this request: Content-MD5",
        ));
    }
    let body = read_xml_body(parts, body).await?;
    let doc = xml::parse(&body).ok_or_else(S3Error::malformed_xml)?;
    if doc.name != "Delete" {
        return Err(S3Error::malformed_xml());
    }
    let quiet = doc.child("Quiet").is_some_and(|q| q.text.trim() == "true");
    let keys: Vec<String> = doc
        .all("Object")
        .map(|o| o.child("Key").map(|k| k.text.clone()))
        .collect::<Option<_>>()
        .ok_or_else(S3Error::malformed_xml)?;
    if keys.is_empty() || keys.len() > 1000 {
        return Err(S3Error::malformed_xml());
    }
    let (s3c, account, bucket) = (s3.clone(), account.to_string(), bucket.to_string());
    let results = blocking(move || {
        Ok(keys
            .into_iter()
            .map(|k| {
                let r = if k.len() > MAX_KEY {
                    Err(S3Error::new(400, "KeyTooLongError", "Your key is too long"))
                } else {
                    s3c.delete_object(&account, &bucket, &k)
                };
                (k, r)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let mut w = Writer::new("DeleteResult");
    for (k, r) in results {
        match r {
            Ok(()) if quiet => {}
            Ok(()) => {
                w.open("Deleted").elem("Key", &k).close("Deleted");
            }
            Err(e) => {
                w.open("Error")
                    .elem("Key", &k)
                    .elem("Code", e.code)
                    .elem("Message", &e.message)
                    .close("Error");
            }
        }
    }
    Ok(xml_response(200, w.finish("DeleteResult")))
}

/// The canonical user id Berth gives an account (S3 ids are 64 hex digits).
fn owner_id(account: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("berth:{account}")))
}

fn invalid_token() -> S3Error {
    S3Error::invalid_argument("The continuation token provided is incorrect")
}

fn list_buckets(s3: &S3, account: &str, query: &HashMap<String, String>) -> Response<Body> {
    let prefix = query.get("prefix").map(String::as_str).unwrap_or("");
    let region = query.get("bucket-region");
    let after = query
        .get("continuation-token")
        .and_then(|t| B64.decode(t).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let max = query
        .get("max-buckets")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(10_000)
        .clamp(1, 10_000);
    let mut buckets: Vec<Arc<Value>> = s3
        .list_buckets(account)
        .into_iter()
        .filter(|b| {
            let name = b["name"].as_str().unwrap_or_default();
            name.starts_with(prefix)
                && region.is_none_or(|r| b["region"] == r.as_str())
                && after.as_deref().is_none_or(|a| name > a)
        })
        .collect();
    let truncated = buckets.len() > max;
    buckets.truncate(max);
    let mut w = Writer::new("ListAllMyBucketsResult");
    w.open("Buckets");
    for b in &buckets {
        w.open("Bucket")
            .elem("Name", b["name"].as_str().unwrap_or_default())
            .elem(
                "CreationDate",
                &berth_wire::time::format_iso8601(b["createdAt"].as_f64().unwrap_or(0.0)),
            )
            .elem("BucketRegion", b["region"].as_str().unwrap_or_default())
            .close("Bucket");
    }
    w.close("Buckets");
    w.open("Owner")
        .elem("ID", &owner_id(account))
        .close("Owner");
    if truncated {
        if let Some(last) = buckets.last() {
            let name = last["name"].as_str().unwrap_or_default();
            w.elem("ContinuationToken", &B64.encode(name));
        }
    }
    if query.contains_key("prefix") {
        w.elem("Prefix", prefix);
    }
    xml_response(200, w.finish("ListAllMyBucketsResult"))
}

/// ListObjects (v1, `marker`) and ListObjectsV2 (`continuation-token`, `start-after`).
fn list(
    s3: &S3,
    account: &str,
    bucket: &str,
    query: &HashMap<String, String>,
    v2: bool,
) -> Result<Response<Body>, S3Error> {
    let get = |k: &str| query.get(k).map(String::as_str);
    let prefix = get("prefix").unwrap_or("");
    let delimiter = get("delimiter").filter(|d| !d.is_empty());
    let url = match get("encoding-type") {
        None => false,
        Some("url") => true,
        Some(_) => {
            return Err(S3Error::invalid_argument(
                "Invalid Encoding Method specified in Request",
            ))
        }
    };
    let max = match get("max-keys") {
        None => 1000,
        Some(m) => m.parse::<i64>().ok().filter(|m| *m >= 0).ok_or_else(|| {
            S3Error::invalid_argument("Provided max-keys not an integer or within integer range")
        })?,
    }
    .min(1000) as usize;
    let token = match get("continuation-token").filter(|_| v2) {
        Some(t) => Some(
            B64.decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(invalid_token)?,
        ),
        None => None,
    };
    let marker = if v2 {
        token.clone().or(get("start-after").map(str::to_string))
    } else {
        get("marker").map(str::to_string)
    };
    let after = marker
        .as_deref()
        .map(|m| resume_after(m, prefix, delimiter));
    let page = list_objects(
        s3.store.as_ref(),
        bucket,
        prefix,
        delimiter,
        after.as_deref(),
        max,
    );
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let mut w = Writer::new("ListBucketResult");
    w.elem("Name", bucket)
        .elem("Prefix", &enc(prefix))
        .elem("MaxKeys", &max.to_string());
    if let Some(d) = delimiter {
        w.elem("Delimiter", &enc(d));
    }
    if url {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    if v2 {
        w.elem(
            "KeyCount",
            &(page.contents.len() + page.common_prefixes.len()).to_string(),
        );
        if let Some(t) = get("continuation-token") {
            w.elem("ContinuationToken", t);
        }
        if let Some(s) = get("start-after") {
            w.elem("StartAfter", &enc(s));
        }
        if page.truncated {
            if let Some(last) = &page.last {
                w.elem("NextContinuationToken", &B64.encode(last));
            }
        }
    } else {
        w.elem("Marker", &enc(get("marker").unwrap_or("")));
        if page.truncated && delimiter.is_some() {
            if let Some(last) = &page.last {
                w.elem("NextMarker", &enc(last));
            }
        }
    }
    let owner = (!v2 || get("fetch-owner") == Some("true")).then(|| owner_id(account));
    for (key, obj) in &page.contents {
        w.open("Contents")
            .elem("Key", &enc(key))
            .elem(
                "LastModified",
                &berth_wire::time::format_iso8601(obj["lastModified"].as_f64().unwrap_or(0.0)),
            )
            .elem("ETag", &etag(obj))
            .elem("Size", &obj["size"].as_u64().unwrap_or(0).to_string())
            .elem("StorageClass", "STANDARD");
        if let Some(id) = &owner {
            w.open("Owner").elem("ID", id).close("Owner");
        }
        w.close("Contents");
    }
    for p in &page.common_prefixes {
        w.open("CommonPrefixes")
            .elem("Prefix", &enc(p))
            .close("CommonPrefixes");
    }
    Ok(xml_response(200, w.finish("ListBucketResult")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_buckets() {
        assert_eq!(
            host_bucket("photos.localhost:4566").as_deref(),
            Some("photos")
        );
        assert_eq!(
            host_bucket("my.photos.s3.localhost").as_deref(),
            Some("my.photos")
        );
        assert_eq!(
            host_bucket("photos.s3.eu-west-1.localhost:4566").as_deref(),
            Some("photos")
        );
        assert_eq!(host_bucket("s3.localhost:4566"), None);
        assert_eq!(host_bucket("127.0.0.1:4566"), None);
        assert_eq!(host_bucket("localhost:4566"), None);
    }

    #[test]
    fn paths_decode() {
        assert_eq!(percent_decode("a%20b+c%2Fd").as_deref(), Some("a b+c/d"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(url_encode("dir/a b+c&é"), "dir/a%20b%2Bc%26%C3%A9");
    }
}
