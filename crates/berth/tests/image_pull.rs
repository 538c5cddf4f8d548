//! The node's image puller against Berth's own registry over HTTP: verified blobs, layers
//! unpacked once, concurrent pulls, tampered content and missing images.

mod common;

use berth_image::{ContentStore, ImageRef, PullError, Puller, PullerOptions};
use common::{create_repo, push_blob, sha256, Server};
use std::io::Write;
use std::sync::Arc;

fn gzip_layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(content.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// Push a one-layer image; returns (manifest digest, layer digest).
fn push_image(s: &Server, repo: &str, tag: &str, files: &[(&str, &str)]) -> (String, String) {
    let layer = gzip_layer(files);
    let ld = push_blob(s, repo, &layer);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [ld]}})
    .to_string();
    let cd = push_blob(s, repo, config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}],
    })
    .to_string();
    let (status, _, body) = s
        .raw(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            manifest.as_bytes(),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    (sha256(manifest.as_bytes()), ld)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPED: unpacking image layers needs root");
    }
    root
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_verifies_and_unpacks_once() {
    if !is_root() {
        return;
    }
    let s = Server::start();
    create_repo(&s, "app");
    let (md, ld) = push_image(
        &s,
        "app",
        "v1",
        &[("bin/hello", "#!/bin/sh\necho hi\n"), ("etc/name", "berth")],
    );
    let store_dir = tempfile::tempdir().unwrap();
    let puller = Arc::new(
        Puller::new(
            Arc::new(ContentStore::open(store_dir.path()).unwrap()),
            PullerOptions::default(),
        )
        .unwrap(),
    );
    let image = ImageRef::parse(&format!("{}/app:v1", s.addr)).unwrap();

    // Two pulls at once: both succeed, sharing one download and one unpack.
    let (a, b) = tokio::join!(puller.pull(&image, None), puller.pull(&image, None));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.manifest_digest, md);
    assert_eq!(a.layers, b.layers);
    assert_eq!(a.config["config"]["Cmd"][0], "/bin/hello");
    let layer = &a.layers[0];
    assert_eq!(
        std::fs::read_to_string(layer.join("etc/name")).unwrap(),
        "berth"
    );
    assert!(layer.ends_with(ld.trim_start_matches("sha256:")));

    // The ECR form of the name works without DNS for *.localhost, and selects the account
    // and region from the name (the default ones here).
    let ecr_name = ImageRef::parse(&format!(
        "000000000000.dkr.ecr.us-east-1.localhost:{}/app:v1",
        s.addr.rsplit(':').next().unwrap()
    ))
    .unwrap();
    assert_eq!(
        puller.pull(&ecr_name, None).await.unwrap().manifest_digest,
        md
    );

    // By digest too; the layer directory is reused, not unpacked again.
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(layer).unwrap());
    let by_digest = ImageRef::parse(&format!("{}/app@{md}", s.addr)).unwrap();
    let c = puller.pull(&by_digest, None).await.unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&c.layers[0]).unwrap()),
        inode
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_and_missing_content_is_refused() {
    if !is_root() {
        return;
    }
    let s = Server::start();
    create_repo(&s, "app");
    let (_, ld) = push_image(&s, "app", "v1", &[("etc/name", "original")]);
    // Corrupt the registry's copy of the layer on disk, keeping its length.
    let hex = ld.trim_start_matches("sha256:");
    let on_disk = s
        .data
        .join("registry/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    let mut bytes = std::fs::read(&on_disk).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&on_disk, &bytes).unwrap();

    let store_dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ContentStore::open(store_dir.path()).unwrap());
    let puller = Puller::new(store.clone(), PullerOptions::default()).unwrap();
    let image = ImageRef::parse(&format!("{}/app:v1", s.addr)).unwrap();
    match puller.pull(&image, None).await {
        Err(PullError::DigestMismatch { expected, .. }) => assert_eq!(expected, ld),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(
        !store.blob_path(&ld).unwrap().exists(),
        "nothing unverified is kept"
    );
    assert!(!store.layer_path(&ld).unwrap().exists());

    let missing = ImageRef::parse(&format!("{}/app:nope", s.addr)).unwrap();
    match puller.pull(&missing, None).await {
        Err(PullError::Registry { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    let unreachable = ImageRef::parse("127.0.0.1:1/app:v1").unwrap();
    match puller.pull(&unreachable, None).await {
        // The cause is in the message, not just "client error (Connect)".
        Err(PullError::Unreachable(m)) => assert!(m.contains("refused"), "{m}"),
        other => panic!("expected unreachable, got {other:?}"),
    }
}

/// An ECR API call signed with SigV4 (auth is enforced), returning the JSON answer.
fn signed_ecr(s: &Server, op: &str, body: &str) -> serde_json::Value {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity =
        aws_credential_types::Credentials::new("test", "test", None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("ecr")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let target = format!("AmazonEC2ContainerRegistry_V20150921.{op}");
    let host = s.addr.clone();
    let headers = [
        ("host", host.as_str()),
        ("x-amz-target", target.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
    ];
    let signable = SignableRequest::new(
        "POST",
        format!("http://{host}/"),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut all: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| *k != "host")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in instructions.headers() {
        all.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, answer) = s.raw("POST", "/", &refs, body.as_bytes()).unwrap();
    assert_eq!(status, 200, "{op}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_with_the_ecr_token_when_auth_is_enforced() {
    use base64::Engine;
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), &["--enforce-auth"]);
    signed_ecr(&s, "CreateRepository", r#"{"repositoryName":"private"}"#);
    let token = signed_ecr(&s, "GetAuthorizationToken", "{}");
    let encoded = token["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap();
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    let (user, password) = decoded.split_once(':').unwrap();
    assert_eq!(user, "AWS");

    // Push with the token as basic auth (what `docker login` would send).
    let basic = format!("Basic {encoded}");
    let layer = gzip_layer(&[("etc/secret", "s3cr3t")]);
    let ld = sha256(&layer);
    let (status, _, body) = s
        .raw(
            "POST",
            &format!("/v2/private/blobs/uploads/?digest={ld}"),
            &[("Authorization", &basic)],
            &layer,
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let config = r#"{"architecture":"amd64","os":"linux"}"#;
    let cd = sha256(config.as_bytes());
    s.raw(
        "POST",
        &format!("/v2/private/blobs/uploads/?digest={cd}"),
        &[("Authorization", &basic)],
        config.as_bytes(),
    )
    .unwrap();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}]})
    .to_string();
    let (status, _, body) = s
        .raw(
            "PUT",
            "/v2/private/manifests/v1",
            &[
                ("Authorization", &basic),
                ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
            ],
            manifest.as_bytes(),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");

    let store_dir = tempfile::tempdir().unwrap();
    let puller = Puller::new(
        Arc::new(ContentStore::open(store_dir.path()).unwrap()),
        PullerOptions::default(),
    )
    .unwrap();
    let image = ImageRef::parse(&format!("{}/private:v1", s.addr)).unwrap();
    match puller.pull(&image, None).await {
        Err(PullError::Registry { status: 401, .. }) => {}
        other => panic!("expected 401 without credentials, got {other:?}"),
    }
    match puller.pull(&image, Some(("AWS", "forged"))).await {
        Err(PullError::Registry { status: 401, .. }) => {}
        other => panic!("expected 401 with a forged token, got {other:?}"),
    }
    let pulled = puller.pull(&image, Some((user, password))).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.layers[0].join("etc/secret")).unwrap(),
        "s3cr3t"
    );
}
