//! The multipart upload operations on the wire: create, upload (or copy) parts, complete,
//! abort, and the two listings.

use super::{
    blocking, copy_source, etag, header, meta_from_headers, not_implemented, read_xml_body,
    receive_checked, receive_into, with_checksum, xml_response,
};
use crate::multipart::{WantedPart, MAX_PARTS};
use crate::xml::{self, Writer};
use crate::{S3Error, MAX_OBJECT, S3};
use berth_http::{empty, Body};
use berth_wire::time::format_iso8601;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::Response;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// (account, bucket, key) of the request, owned for moving into blocking work.
type Names = (String, String, String);

fn names(account: &str, bucket: &str, key: &str) -> Names {
    (account.to_string(), bucket.to_string(), key.to_string())
}

fn upload_id(query: &HashMap<String, String>) -> String {
    query.get("uploadId").cloned().unwrap_or_default()
}

fn part_number(query: &HashMap<String, String>) -> Result<u32, S3Error> {
    query
        .get("partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

fn checksum_elements(w: &mut Writer, checksums: &Value) {
    for (algorithm, v) in checksums.as_object().into_iter().flatten() {
        let tag = format!("Checksum{algorithm}");
        w.elem(&tag, v.as_str().unwrap_or_default());
    }
}

pub(super) async fn create(
    s3: &Arc<S3>,
    parts: &Parts,
    (account, bucket, key): (&str, &str, &str),
) -> Result<Response<Body>, S3Error> {
    let meta = meta_from_headers(parts)?;
    let algorithm = match header(parts, "x-amz-checksum-algorithm").map(str::to_ascii_uppercase) {
        None => None,
        Some(a) if a == "CRC32" || a == "SHA256" => Some(a),
        Some(a) => return Err(not_implemented(&format!("Checksum algorithm {a}"))),
    };
    if header(parts, "x-amz-checksum-type").is_some_and(|t| t != "COMPOSITE") {
        return Err(not_implemented(
            "A full-object checksum of a multipart upload",
        ));
    }
    let (s3c, (a, b, k), alg) = (s3.clone(), names(account, bucket, key), algorithm.clone());
    let id = blocking(move || s3c.create_upload(&a, &b, &k, meta, alg.as_deref())).await?;
    let mut w = Writer::new("InitiateMultipartUploadResult");
    w.elem("Bucket", bucket)
        .elem("Key", key)
        .elem("UploadId", &id);
    let mut r = xml_response(200, w.finish("InitiateMultipartUploadResult"));
    if let Some(a) = algorithm.and_then(|a| a.parse().ok()) {
        r.headers_mut().insert("x-amz-checksum-algorithm", a);
    }
    Ok(r)
}

pub(super) async fn upload_part(
    s3: &Arc<S3>,
    parts: &Parts,
    body: Incoming,
    query: &HashMap<String, String>,
    (account, bucket, key): (&str, &str, &str),
) -> Result<Response<Body>, S3Error> {
    let number = part_number(query)?;
    let id = upload_id(query);
    // Refuse before receiving anything for an upload that is not there.
    s3.upload(account, bucket, key, &id)?;
    let (staged, verified) = receive_checked(s3, parts, body, MAX_OBJECT).await?;
    let (s3c, (a, b, k), v) = (s3.clone(), names(account, bucket, key), verified.clone());
    let part = blocking(move || s3c.put_part(&a, &b, &k, &id, number, staged, v)).await?;
    Ok(
        with_checksum(Response::builder().header("etag", etag(&part)), verified)
            .body(empty())
            .expect("response"),
    )
}

/// UploadPartCopy: a part made of (a range of) an existing object's bytes.
pub(super) async fn upload_part_copy(
    s3: &Arc<S3>,
    parts: &Parts,
    query: &HashMap<String, String>,
    (account, bucket, key): (&str, &str, &str),
) -> Result<Response<Body>, S3Error> {
    let number = part_number(query)?;
    let id = upload_id(query);
    s3.upload(account, bucket, key, &id)?;
    let (src_bucket, src_key) = copy_source(parts)?;
    let src = s3.object(account, &src_bucket, &src_key)?;
    let size = src["size"].as_u64().unwrap_or(0);
    let (start, len) = match header(parts, "x-amz-copy-source-range") {
        None => (0, size),
        Some(r) => {
            let (s, e) = r
                .strip_prefix("bytes=")
                .and_then(|r| r.split_once('-'))
                .and_then(|(s, e)| Some((s.parse::<u64>().ok()?, e.parse::<u64>().ok()?)))
                .filter(|(s, e)| s <= e && *e < size)
                .ok_or_else(|| {
                    S3Error::invalid_argument(format!(
                        "Range specified is not valid for source object of size: {size}"
                    ))
                })?;
            (s, e - s + 1)
        }
    };
    let staged = receive_into(s3, &s3.object_path(&src), start, len).await?;
    let (s3c, (a, b, k)) = (s3.clone(), names(account, bucket, key));
    let part = blocking(move || s3c.put_part(&a, &b, &k, &id, number, staged, None)).await?;
    let mut w = Writer::new("CopyPartResult");
    w.elem(
        "LastModified",
        &format_iso8601(part["lastModified"].as_f64().unwrap_or(0.0)),
    )
    .elem("ETag", &etag(&part));
    Ok(xml_response(200, w.finish("CopyPartResult")))
}

pub(super) async fn complete(
    s3: &Arc<S3>,
    parts: &Parts,
    body: Incoming,
    query: &HashMap<String, String>,
    (account, bucket, key): (&str, &str, &str),
) -> Result<Response<Body>, S3Error> {
    let id = upload_id(query);
    let body = read_xml_body(parts, body).await?;
    let doc = xml::parse(&body).ok_or_else(S3Error::malformed_xml)?;
    if doc.name != "CompleteMultipartUpload" {
        return Err(S3Error::malformed_xml());
    }
    let wanted: Vec<WantedPart> = doc
        .all("Part")
        .map(|p| {
            Some(WantedPart {
                number: p.child("PartNumber")?.text.trim().parse().ok()?,
                etag: p.child("ETag")?.text.trim().to_string(),
            })
        })
        .collect::<Option<_>>()
        .ok_or_else(S3Error::malformed_xml)?;
    let (s3c, (a, b, k)) = (s3.clone(), names(account, bucket, key));
    let obj = blocking(move || s3c.complete_upload(&a, &b, &k, &id, &wanted)).await?;
    let mut w = Writer::new("CompleteMultipartUploadResult");
    w.elem("Location", &format!("/{bucket}/{key}"))
        .elem("Bucket", bucket)
        .elem("Key", key)
        .elem("ETag", &etag(&obj));
    if obj["checksums"].as_object().is_some_and(|c| !c.is_empty()) {
        checksum_elements(&mut w, &obj["checksums"]);
        w.elem("ChecksumType", "COMPOSITE");
    }
    Ok(xml_response(200, w.finish("CompleteMultipartUploadResult")))
}

pub(super) async fn abort(
    s3: &Arc<S3>,
    query: &HashMap<String, String>,
    (account, bucket, key): (&str, &str, &str),
) -> Result<Response<Body>, S3Error> {
    let id = upload_id(query);
    let (s3c, (a, b, k)) = (s3.clone(), names(account, bucket, key));
    blocking(move || s3c.abort_upload(&a, &b, &k, &id)).await?;
    Ok(Response::builder()
        .status(204)
        .body(empty())
        .expect("response"))
}

fn max_param(query: &HashMap<String, String>, name: &str) -> Result<usize, S3Error> {
    match query.get(name) {
        None => Ok(1000),
        Some(m) => m.parse::<usize>().map(|m| m.min(1000)).map_err(|_| {
            S3Error::invalid_argument(format!(
                "Provided {name} not an integer or within integer range"
            ))
        }),
    }
}

pub(super) fn list_parts(
    s3: &S3,
    query: &HashMap<String, String>,
    (account, bucket, key): (&str, &str, &str),
) -> Result<Response<Body>, S3Error> {
    let id = upload_id(query);
    s3.upload(account, bucket, key, &id)?;
    let marker: u32 = query
        .get("part-number-marker")
        .map(|m| m.parse())
        .transpose()
        .map_err(|_| S3Error::invalid_argument("Part number marker must be an integer"))?
        .unwrap_or(0);
    let max = max_param(query, "max-parts")?;
    let numbered: Vec<(u32, Arc<Value>)> = s3
        .parts(&id)
        .into_iter()
        .filter_map(|p| Some((p.key.rsplit('/').next()?.parse().ok()?, p.value)))
        .filter(|(n, _)| *n > marker)
        .collect();
    let truncated = numbered.len() > max;
    let page = &numbered[..numbered.len().min(max)];
    let mut w = Writer::new("ListPartsResult");
    w.elem("Bucket", bucket)
        .elem("Key", key)
        .elem("UploadId", &id)
        .elem("PartNumberMarker", &marker.to_string())
        .elem("MaxParts", &max.to_string())
        .elem("IsTruncated", if truncated { "true" } else { "false" })
        .elem("StorageClass", "STANDARD");
    if let Some((last, _)) = page.last() {
        w.elem("NextPartNumberMarker", &last.to_string());
    }
    for (n, p) in page {
        w.open("Part")
            .elem("PartNumber", &n.to_string())
            .elem(
                "LastModified",
                &format_iso8601(p["lastModified"].as_f64().unwrap_or(0.0)),
            )
            .elem("ETag", &etag(p))
            .elem("Size", &p["size"].as_u64().unwrap_or(0).to_string());
        checksum_elements(&mut w, &p["checksums"]);
        w.close("Part");
    }
    Ok(xml_response(200, w.finish("ListPartsResult")))
}

pub(super) fn list_uploads(
    s3: &S3,
    query: &HashMap<String, String>,
    account: &str,
    bucket: &str,
) -> Result<Response<Body>, S3Error> {
    s3.owned_bucket(account, bucket)?;
    let get = |k: &str| query.get(k).map(String::as_str);
    let prefix = get("prefix").unwrap_or("");
    let key_marker = get("key-marker").unwrap_or("");
    let id_marker = get("upload-id-marker").unwrap_or("");
    let max = max_param(query, "max-uploads")?;
    let after = |key: &str, id: &str| {
        key > key_marker || (key == key_marker && !id_marker.is_empty() && id > id_marker)
    };
    let all: Vec<(String, Arc<Value>)> = s3
        .uploads(bucket)
        .into_iter()
        .filter(|(id, u)| {
            let key = u["key"].as_str().unwrap_or_default();
            key.starts_with(prefix) && (key_marker.is_empty() || after(key, id))
        })
        .collect();
    let truncated = all.len() > max;
    let page = &all[..all.len().min(max)];
    let mut w = Writer::new("ListMultipartUploadsResult");
    w.elem("Bucket", bucket)
        .elem("KeyMarker", key_marker)
        .elem("UploadIdMarker", id_marker)
        .elem("Prefix", prefix)
        .elem("MaxUploads", &max.to_string())
        .elem("IsTruncated", if truncated { "true" } else { "false" });
    if let (true, Some((id, u))) = (truncated, page.last()) {
        w.elem("NextKeyMarker", u["key"].as_str().unwrap_or_default())
            .elem("NextUploadIdMarker", id);
    }
    for (id, u) in page {
        w.open("Upload")
            .elem("Key", u["key"].as_str().unwrap_or_default())
            .elem("UploadId", id)
            .elem(
                "Initiated",
                &format_iso8601(u["initiated"].as_f64().unwrap_or(0.0)),
            )
            .elem("StorageClass", "STANDARD");
        if let Some(a) = u["checksumAlgorithm"].as_str() {
            w.elem("ChecksumAlgorithm", a);
        }
        w.close("Upload");
    }
    Ok(xml_response(200, w.finish("ListMultipartUploadsResult")))
}
