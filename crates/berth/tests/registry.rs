//! The OCI distribution API with raw HTTP: uploads of every kind, digest checks,
//! manifests, referrers, pagination, bad input, and a kill -9 in the middle of a push.

mod common;

use common::{create_repo, push_blob, raw_at, sha256, Server};
use sha2::{Digest as _, Sha256, Sha512};
use std::io::Write;

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l.split_once(':').unwrap().1.trim().to_string())
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn image_manifest(config: &str, config_len: usize, layer: &str, layer_len: usize) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_len}],
    })
    .to_string()
    .into_bytes()
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn blobs_uploads_and_ranges() {
    let s = Server::start();
    create_repo(&s, "web");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = push_blob(&s, "web", &data);

    let (status, head, _) = s
        .raw("HEAD", &format!("/v2/web/blobs/{d}"), &[], b"")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-length").as_deref(), Some("100000"));
    assert_eq!(header(&head, "docker-content-digest"), Some(d.clone()));
    let (status, head, body) = s
        .raw(
            "GET",
            &format!("/v2/web/blobs/{d}"),
            &[("Range", "bytes=10-19")],
            b"",
        )
        .unwrap();
    assert_eq!(status, 206);
    assert_eq!(
        header(&head, "content-range").as_deref(),
        Some("bytes 10-19/100000")
    );
    assert_eq!(body.as_bytes(), &data[10..20]);
    let (status, _, _) = s
        .raw(
            "GET",
            &format!("/v2/web/blobs/{d}"),
            &[("Range", "bytes=100000-")],
            b"",
        )
        .unwrap();
    assert_eq!(status, 416);

    // Chunked: POST, PATCH, PATCH, status, PUT.
    let (status, head, _) = s.raw("POST", "/v2/web/blobs/uploads/", &[], b"").unwrap();
    assert_eq!(status, 202);
    let loc = header(&head, "location").unwrap();
    let (status, head, _) = s
        .raw(
            "PATCH",
            &loc,
            &[("Content-Range", "0-49999")],
            &data[..50_000],
        )
        .unwrap();
    assert_eq!(status, 202);
    assert_eq!(header(&head, "range").as_deref(), Some("0-49999"));
    let (status, _, _) = s
        .raw("PATCH", &loc, &[("Content-Range", "10-20")], &data[10..21])
        .unwrap();
    assert_eq!(status, 416, "an out-of-order chunk is refused");
    let (status, head, _) = s.raw("GET", &loc, &[], b"").unwrap();
    assert_eq!(status, 204);
    assert_eq!(header(&head, "range").as_deref(), Some("0-49999"));
    s.raw("PATCH", &loc, &[], &data[50_000..99_000]).unwrap();
    let (status, head, _) = s
        .raw("PUT", &format!("{loc}?digest={d}"), &[], &data[99_000..])
        .unwrap();
    assert_eq!(status, 201);
    assert_eq!(header(&head, "docker-content-digest"), Some(d.clone()));

    // sha512 digests are verified too.
    let d512 = format!("sha512:{}", hex::encode(Sha512::digest(b"five twelve")));
    let (status, _, _) = s
        .raw(
            "POST",
            &format!("/v2/web/blobs/uploads/?digest={d512}"),
            &[],
            b"five twelve",
        )
        .unwrap();
    assert_eq!(status, 201);
    assert_eq!(
        s.raw("HEAD", &format!("/v2/web/blobs/{d512}"), &[], b"")
            .unwrap()
            .0,
        200
    );

    // Cross-repository mount; an unmountable blob falls back to an upload session.
    create_repo(&s, "other");
    assert_eq!(
        s.raw("HEAD", &format!("/v2/other/blobs/{d}"), &[], b"")
            .unwrap()
            .0,
        404,
        "blobs are per repository"
    );
    let (status, _, _) = s
        .raw(
            "POST",
            &format!("/v2/other/blobs/uploads/?mount={d}&from=web"),
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(status, 201);
    assert_eq!(
        s.raw("HEAD", &format!("/v2/other/blobs/{d}"), &[], b"")
            .unwrap()
            .0,
        200
    );
    let missing = sha256(b"nowhere");
    let (status, _, _) = s
        .raw(
            "POST",
            &format!("/v2/other/blobs/uploads/?mount={missing}&from=web"),
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(status, 202);
}

#[test]
fn bad_uploads_leave_nothing() {
    let s = Server::start();
    create_repo(&s, "web");
    let claimed = sha256(b"what I said");
    let (status, _, body) = s
        .raw(
            "POST",
            &format!("/v2/web/blobs/uploads/?digest={claimed}"),
            &[],
            b"what I sent",
        )
        .unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "DIGEST_INVALID")
    );
    assert_eq!(
        s.raw("HEAD", &format!("/v2/web/blobs/{claimed}"), &[], b"")
            .unwrap()
            .0,
        404
    );

    let (_, head, _) = s.raw("POST", "/v2/web/blobs/uploads/", &[], b"").unwrap();
    let loc = header(&head, "location").unwrap();
    s.raw("PATCH", &loc, &[], b"partial").unwrap();
    let (status, _, body) = s
        .raw("PUT", &format!("{loc}?digest={claimed}"), &[], b"")
        .unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "DIGEST_INVALID")
    );
    let (status, _, body) = s.raw("GET", &loc, &[], b"").unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN"),
        "a failed upload is discarded"
    );

    let cases: Vec<(&str, &str, u16, &str)> = vec![
        ("GET", "/v2/Bad_Name/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/ghost/tags/list", 404, "NAME_UNKNOWN"),
        ("POST", "/v2/ghost/blobs/uploads/", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/web/manifests/latest", 404, "MANIFEST_UNKNOWN"),
        (
            "HEAD",
            "/v2/web/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            404,
            "",
        ),
        (
            "GET",
            "/v2/web/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            404,
            "BLOB_UNKNOWN",
        ),
        ("GET", "/v2/web/blobs/md5:abc", 400, "DIGEST_INVALID"),
        (
            "GET",
            "/v2/web/blobs/uploads/not-a-session",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
    ];
    for (method, path, status, code) in cases {
        let (got, _, body) = s.raw(method, path, &[], b"").unwrap();
        assert_eq!(got, status, "{method} {path}: {body}");
        if !code.is_empty() {
            assert_eq!(error_code(&body), code, "{method} {path}");
        }
    }
    assert_eq!(
        s.raw("GET", "/v2/", &[], b"").unwrap().0,
        200,
        "still serving"
    );
}

#[test]
fn manifests_tags_and_referrers() {
    let s = Server::start();
    create_repo(&s, "app");
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"layer bytes";
    let cd = push_blob(&s, "app", config);
    let ld = push_blob(&s, "app", layer);
    let m = image_manifest(&cd, config.len(), &ld, layer.len());
    let md = sha256(&m);

    let put = |r: &str, ct: &str, body: &[u8]| {
        s.raw(
            "PUT",
            &format!("/v2/app/manifests/{r}"),
            &[("Content-Type", ct)],
            body,
        )
        .unwrap()
    };
    let (status, head, _) = put("v1", OCI_MANIFEST, &m);
    assert_eq!(status, 201);
    assert_eq!(header(&head, "docker-content-digest"), Some(md.clone()));
    let (status, head, body) = s.raw("GET", "/v2/app/manifests/v1", &[], b"").unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type").as_deref(), Some(OCI_MANIFEST));
    assert_eq!(sha256(body.as_bytes()), md);
    assert_eq!(
        s.raw("GET", &format!("/v2/app/manifests/{md}"), &[], b"")
            .unwrap()
            .0,
        200
    );

    // Bad manifests.
    let missing = image_manifest(&cd, config.len(), &sha256(b"absent"), 6);
    let (status, _, body) = put("bad", OCI_MANIFEST, &missing);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    let (status, _, body) = put("bad", "application/x-not-a-manifest", &m);
    assert!(
        (400..500).contains(&status) && error_code(&body) == "MANIFEST_INVALID",
        "{status} {body}"
    );
    let (status, _, body) = put("bad", OCI_MANIFEST, b"{not json");
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "MANIFEST_INVALID")
    );
    let (status, _, body) = put("-bad", OCI_MANIFEST, &m);
    assert_eq!((status, error_code(&body).as_str()), (400, "TAG_INVALID"));
    let (status, _, body) = put(&sha256(b"other"), OCI_MANIFEST, &m);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "DIGEST_INVALID")
    );
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    assert_eq!(put("big", OCI_MANIFEST, &big).0, 413);
    assert_eq!(
        s.raw("GET", "/v2/app/manifests/bad", &[], b"").unwrap().0,
        404,
        "nothing stored"
    );

    // A referrer (an artifact whose subject is the image).
    let empty = push_blob(&s, "app", b"{}");
    let sig = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": ld, "size": layer.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": md, "size": m.len()},
    })
    .to_string();
    let (status, head, _) = put(&sha256(sig.as_bytes()), OCI_MANIFEST, sig.as_bytes());
    assert_eq!(status, 201);
    assert_eq!(header(&head, "oci-subject"), Some(md.clone()));
    let (status, _, body) = s
        .raw("GET", &format!("/v2/app/referrers/{md}"), &[], b"")
        .unwrap();
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.signature"
    );
    let (_, head, body) = s
        .raw(
            "GET",
            &format!("/v2/app/referrers/{md}?artifactType=application/other"),
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(
        header(&head, "oci-filters-applied").as_deref(),
        Some("artifactType")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["manifests"],
        serde_json::json!([])
    );

    // Tags with pagination; the catalog.
    put("v2", OCI_MANIFEST, &m);
    put("v3", OCI_MANIFEST, &m);
    let (_, head, body) = s.raw("GET", "/v2/app/tags/list?n=2", &[], b"").unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["tags"],
        serde_json::json!(["v1", "v2"])
    );
    assert!(header(&head, "link").unwrap().contains("last=v2"));
    let (_, _, body) = s
        .raw("GET", "/v2/app/tags/list?n=2&last=v2", &[], b"")
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["tags"],
        serde_json::json!(["v3"])
    );
    let (_, _, body) = s.raw("GET", "/v2/_catalog", &[], b"").unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["repositories"],
        serde_json::json!(["app"])
    );

    // Deleting by digest removes its tags.
    assert_eq!(
        s.raw("DELETE", &format!("/v2/app/manifests/{md}"), &[], b"")
            .unwrap()
            .0,
        202
    );
    let (_, _, body) = s.raw("GET", "/v2/app/tags/list", &[], b"").unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["tags"],
        serde_json::json!([])
    );
}

/// Every file in the blob store is complete: its name is the hash of its content.
fn assert_store_is_clean(data: &std::path::Path) {
    let root = data.join("registry/blobs/sha256");
    let Ok(prefixes) = std::fs::read_dir(&root) else {
        return;
    };
    for p in prefixes {
        for f in std::fs::read_dir(p.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let bytes = std::fs::read(f.path()).unwrap();
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                f.file_name().to_string_lossy(),
                "blob file does not match its name"
            );
        }
    }
}

#[test]
fn kill_9_mid_push_leaves_no_partial_blob_and_the_upload_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    create_repo(&s, "web");
    // Printable bytes, so the raw client's text view of the body has the same length.
    let data: Vec<u8> = (0..2_000_000u32)
        .map(|i| b'a' + (i * 7 % 26) as u8)
        .collect();
    let d = sha256(&data);
    let (_, head, _) = s.raw("POST", "/v2/web/blobs/uploads/", &[], b"").unwrap();
    let loc = header(&head, "location").unwrap();
    let (status, _, _) = s.raw("PATCH", &loc, &[], &data[..1_000_000]).unwrap();
    assert_eq!(status, 202);

    // A second chunk is cut off mid-body by SIGKILL.
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    c.write_all(&data[1_000_000..1_400_000]).unwrap();
    s.kill9();
    drop(c);
    assert_store_is_clean(dir.path());

    // After a restart the session is still there; resume from what it holds.
    let s = Server::start_in(dir.path(), &[]);
    assert_eq!(
        s.raw("HEAD", &format!("/v2/web/blobs/{d}"), &[], b"")
            .unwrap()
            .0,
        404
    );
    let (status, head, _) = s.raw("GET", &loc, &[], b"").unwrap();
    assert_eq!(status, 204);
    let have: usize = header(&head, "range")
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        + 1;
    assert!((1_000_000..=1_400_000).contains(&have), "kept {have} bytes");
    let (status, _, body) = s
        .raw("PUT", &format!("{loc}?digest={d}"), &[], &data[have..])
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, _, body) =
        raw_at(&s.addr, "GET", &format!("/v2/web/blobs/{d}"), &[], b"").unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(body.as_bytes()), d);
    assert_store_is_clean(dir.path());
}
