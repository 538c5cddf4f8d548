//! The puller against real peers: the CNCF distribution registry (Debian's
//! `docker-registry`) serving HTTPS with a certificate from a throwaway CA and requiring
//! bearer tokens, which a small token service here issues (RS256 JWTs carrying the
//! signing certificate in `x5c`, verified by the registry against its `rootcertbundle`);
//! a second registry over the same storage redirecting blob downloads to an HTTPS blob
//! store. Images are pushed with skopeo. Checked: pulls by tag and digest, tokens cached,
//! credentials kept from the blob store; and the errors for an untrusted certificate,
//! plain HTTP to a TLS registry, refused credentials and a forged token.
//!
//! Needs root (layers are unpacked with their owners), `docker-registry`, `openssl` and
//! `skopeo`; without them the tests say SKIPPED.

use base64::Engine;
use berth_image::{ContentStore, ImageRef, PullError, Puller, PullerOptions, Scheme};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER: &str = "puller";
const PASSWORD: &str = "s3cret";
const SERVICE: &str = "berth-test-registry";
const ISSUER: &str = "berth-test-issuer";

fn ready() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: unpacking image layers needs root");
        return false;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in ["docker-registry", "openssl", "skopeo"] {
        if !std::env::split_paths(&path).any(|d| d.join(tool).is_file()) {
            eprintln!("SKIPPED: {tool} is not installed (Debian: apt-get install docker-registry openssl skopeo)");
            return false;
        }
    }
    true
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and a server certificate for localhost and 127.0.0.1 signed by it;
/// another CA that signed nothing; the token signer's key and self-signed certificate
/// (the registry's root bundle) and a rogue signer the registry does not know.
fn make_pki(dir: &Path) {
    std::fs::write(
        dir.join("openssl.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = berth test\n\
         [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n\
         [server]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n\
         [signer]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n",
    )
    .unwrap();
    let req = |name: &str, ext: &str, key: &[&str], subject: &str, ca: bool| {
        let mut c = Command::new("openssl");
        c.current_dir(dir)
            .args(["req", "-x509", "-config", "openssl.cnf", "-extensions", ext])
            .args(["-newkey"])
            .args(key)
            .args(["-nodes", "-days", "2", "-subj", subject])
            .args([
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ]);
        if ca {
            c.args(["-CA", "ca.crt", "-CAkey", "ca.key"]);
        }
        run(&mut c);
    };
    let ec = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    req("ca", "ca", &ec, "/CN=Berth test CA", false);
    req("other-ca", "ca", &ec, "/CN=Some other CA", false);
    req("server", "server", &ec, "/CN=localhost", true);
    req("signer", "signer", &["rsa:2048"], "/CN=token signer", false);
    req("rogue", "signer", &["rsa:2048"], "/CN=rogue signer", false);
    std::fs::create_dir_all(dir.join("certs.d")).unwrap();
    std::fs::copy(dir.join("ca.crt"), dir.join("certs.d/ca.crt")).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Read an HTTP request's head: (method, target, headers with lowercased names).
fn read_head(r: &mut impl BufRead) -> Option<(String, String, HashMap<String, String>)> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some((method, target, headers))
}

fn respond(w: &mut impl Write, status: &str, ctype: &str, body: &[u8], head_only: bool) {
    let _ = write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        let _ = w.write_all(body);
    }
    let _ = w.flush();
}

/// A JWT signer: an RSA key and its certificate, sent in the token's `x5c` header.
struct Signer {
    x5c: String,
    key: Arc<dyn rustls::sign::SigningKey>,
}

impl Signer {
    fn load(dir: &Path, name: &str) -> Signer {
        let cert = CertificateDer::from_pem_file(dir.join(format!("{name}.crt"))).unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
        Signer {
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.as_ref()),
            key: rustls::crypto::ring::sign::any_supported_type(&key).unwrap(),
        }
    }

    fn jwt(&self, claims: &Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let signature = self
            .key
            .choose_scheme(&[rustls::SignatureScheme::RSA_PKCS1_SHA256])
            .expect("an RSA key")
            .sign(input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64.encode(signature))
    }
}

/// The token service (plain HTTP on loopback): checks basic credentials, grants every
/// scope asked for, signs with the registry's signer or, when `forge` is set, the rogue.
struct TokenService {
    realm: String,
    issued: Arc<AtomicUsize>,
    forge: Arc<AtomicBool>,
}

fn start_token_service(pki: &Path) -> TokenService {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    let (issued, forge) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let signers = Arc::new((Signer::load(pki, "signer"), Signer::load(pki, "rogue")));
    let (i, f) = (issued.clone(), forge.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (issued, forge, signers) = (i.clone(), f.clone(), signers.clone());
            std::thread::spawn(move || {
                let Some((_, target, headers)) = read_head(&mut BufReader::new(&mut conn)) else {
                    return;
                };
                let query = target.split_once('?').map_or("", |(_, q)| q);
                let (mut service, mut scopes) = (String::new(), vec![]);
                for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                    match k.as_ref() {
                        "service" => service = v.into_owned(),
                        "scope" => scopes.push(v.into_owned()),
                        _ => {}
                    }
                }
                let want = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
                );
                if headers.get("authorization") != Some(&want) {
                    let body = json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]});
                    respond(
                        &mut conn,
                        "401 Unauthorized",
                        "application/json",
                        body.to_string().as_bytes(),
                        false,
                    );
                    return;
                }
                let access: Vec<Value> = scopes
                    .iter()
                    .filter_map(|s| {
                        let (kind, rest) = s.split_once(':')?;
                        let (name, actions) = rest.rsplit_once(':')?;
                        Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                    })
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let claims = json!({"iss": ISSUER, "sub": USER, "aud": service, "exp": now + 300,
                    "nbf": now - 10, "iat": now, "jti": uuid::Uuid::new_v4().to_string(), "access": access});
                let signer = if forge.load(Ordering::SeqCst) {
                    &signers.1
                } else {
                    &signers.0
                };
                let token = signer.jwt(&claims);
                issued.fetch_add(1, Ordering::SeqCst);
                let body = json!({"token": token, "access_token": token, "expires_in": 300});
                respond(
                    &mut conn,
                    "200 OK",
                    "application/json",
                    body.to_string().as_bytes(),
                    false,
                );
            });
        }
    });
    TokenService {
        realm,
        issued,
        forge,
    }
}

/// Object storage stand-in: serves the registry's storage directory over HTTPS (the
/// registry's `redirect` storage middleware points blob downloads here), counting
/// requests and noting any that carried credentials.
struct BlobStore {
    base: String,
    served: Arc<AtomicUsize>,
    saw_credentials: Arc<AtomicBool>,
}

fn start_blob_store(pki: &Path, root: PathBuf) -> BlobStore {
    let certs = vec![CertificateDer::from_pem_file(pki.join("server.crt")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(pki.join("server.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let (served, saw_credentials) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (s, c) = (served.clone(), saw_credentials.clone());
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let (config, root, served, creds) =
                (config.clone(), root.clone(), s.clone(), c.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let Some((method, target, headers)) = read_head(&mut BufReader::new(&mut tls))
                else {
                    return;
                };
                if headers.contains_key("authorization") {
                    creds.store(true, Ordering::SeqCst);
                }
                let path = target.split('?').next().unwrap_or("");
                let file = root.join(path.trim_start_matches('/'));
                let head = method == "HEAD";
                match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") => {
                        served.fetch_add(1, Ordering::SeqCst);
                        respond(&mut tls, "200 OK", "application/octet-stream", &body, head)
                    }
                    _ => respond(&mut tls, "404 Not Found", "text/plain", b"not found", head),
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    BlobStore {
        base,
        served,
        saw_credentials,
    }
}

/// A docker-registry process serving TLS and requiring tokens from `realm`.
struct Registry {
    /// `localhost:PORT`, as image names write it.
    name: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(
    dir: &Path,
    pki: &Path,
    storage: &Path,
    realm: &str,
    redirect: Option<&str>,
) -> Registry {
    let port = free_port();
    let middleware = redirect.map_or(String::new(), |base| {
        format!("middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: {base}\n")
    });
    let config = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n{middleware}\
         http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test\n  tls:\n    certificate: {pki}/server.crt\n    key: {pki}/server.key\n\
         auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {pki}/signer.crt\n",
        storage = storage.display(),
        pki = pki.display(),
    );
    let path = dir.join(format!("registry-{port}.yml"));
    std::fs::write(&path, config).unwrap();
    let log = dir.join(format!("registry-{port}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&path)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn docker-registry");
    let mut r = Registry {
        name: format!("localhost:{port}"),
        child,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = r.child.try_wait() {
            panic!(
                "docker-registry exited ({status}): {}",
                std::fs::read_to_string(&r.log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "docker-registry did not start: {}",
            std::fs::read_to_string(&r.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

/// An OCI layout holding one image, tag `v1`, with one gzip layer; returns (layout
/// directory, manifest digest, layer digest).
fn make_layout(dir: &Path, files: &[(&str, &str)]) -> (PathBuf, String, String) {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha256(b);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b).unwrap();
        d
    };
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(content.len() as u64);
        h.set_mtime(1_700_000_000);
        tar.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let ld = put(&layer);
    let arch = if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    };
    let config = json!({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]}})
    .to_string();
    let cd = put(config.as_bytes());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}]})
    .to_string();
    let md = put(manifest.as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    (layout, md, ld)
}

/// Everything one test needs: certificates, the token service, a TLS registry with
/// token auth, an image pushed into it with skopeo.
struct Env {
    dir: tempfile::TempDir,
    tokens: TokenService,
    registry: Registry,
    storage: PathBuf,
    manifest: String,
    layer: String,
}

impl Env {
    fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        make_pki(dir.path());
        let tokens = start_token_service(dir.path());
        let storage = dir.path().join("storage");
        let registry = start_registry(dir.path(), dir.path(), &storage, &tokens.realm, None);
        let (layout, manifest, layer) = make_layout(
            dir.path(),
            &[
                ("bin/hello", "#!/bin/sh\necho hi\n"),
                ("etc/name", "over tls"),
            ],
        );
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet", "--preserve-digests"])
            .arg("--dest-cert-dir")
            .arg(dir.path().join("certs.d"))
            .args(["--dest-creds", &format!("{USER}:{PASSWORD}")])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{}/app:v1", registry.name)));
        Env {
            dir,
            tokens,
            registry,
            storage,
            manifest,
            layer,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A puller with its own content store, speaking HTTPS to `registry` and trusting `ca`.
    fn puller(&self, registry: &str, ca: Option<&str>) -> (Puller, tempfile::TempDir) {
        let store = tempfile::tempdir().unwrap();
        let options = PullerOptions {
            extra_ca: ca.map(|c| self.path(c)),
            schemes: HashMap::from([(registry.to_string(), Scheme::Https)]),
        };
        let p = Puller::new(Arc::new(ContentStore::open(store.path()).unwrap()), options).unwrap();
        (p, store)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_over_https_with_bearer_tokens_and_redirects() {
    if !ready() {
        return;
    }
    let env = Env::start();
    let (puller, _store) = env.puller(&env.registry.name, Some("ca.crt"));
    let creds = Some((USER, PASSWORD));
    let pushed_with = env.tokens.issued.load(Ordering::SeqCst);

    let by_tag = ImageRef::parse(&format!("{}/app:v1", env.registry.name)).unwrap();
    let pulled = puller.pull(&by_tag, creds).await.unwrap();
    assert_eq!(pulled.manifest_digest, env.manifest);
    assert_eq!(pulled.config["config"]["Cmd"][0], "/bin/hello");
    assert_eq!(pulled.layers.len(), 1);
    assert!(pulled.layers[0].ends_with(env.layer.trim_start_matches("sha256:")));
    assert_eq!(
        std::fs::read_to_string(pulled.layers[0].join("etc/name")).unwrap(),
        "over tls"
    );
    assert_eq!(
        env.tokens.issued.load(Ordering::SeqCst) - pushed_with,
        1,
        "one token for the manifest, the config and the layer"
    );

    // By digest: verified against it; the token is still good, so none is asked for.
    let by_digest =
        ImageRef::parse(&format!("{}/app@{}", env.registry.name, env.manifest)).unwrap();
    assert_eq!(
        puller
            .pull(&by_digest, creds)
            .await
            .unwrap()
            .manifest_digest,
        env.manifest
    );
    assert_eq!(env.tokens.issued.load(Ordering::SeqCst) - pushed_with, 1);

    // A registry over the same storage that sends blob downloads to HTTPS object storage.
    let blobs = start_blob_store(env.dir.path(), env.storage.clone());
    let redirecting = start_registry(
        env.dir.path(),
        env.dir.path(),
        &env.storage,
        &env.tokens.realm,
        Some(&blobs.base),
    );
    let (puller, _store) = env.puller(&redirecting.name, Some("ca.crt"));
    let image = ImageRef::parse(&format!("{}/app@{}", redirecting.name, env.manifest)).unwrap();
    let pulled = puller.pull(&image, creds).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.layers[0].join("etc/name")).unwrap(),
        "over tls"
    );
    assert_eq!(
        blobs.served.load(Ordering::SeqCst),
        2,
        "the config and the layer came from the blob store"
    );
    assert!(
        !blobs.saw_credentials.load(Ordering::SeqCst),
        "the registry's token is not sent to another origin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificates_and_refused_credentials_fail_clearly() {
    if !ready() {
        return;
    }
    let env = Env::start();
    let name = &env.registry.name;
    let image = ImageRef::parse(&format!("{name}/app:v1")).unwrap();
    let creds = Some((USER, PASSWORD));

    // The system's roots alone, or another CA: the certificate is not trusted.
    for ca in [None, Some("other-ca.crt")] {
        let (puller, _store) = env.puller(name, ca);
        match puller.pull(&image, creds).await {
            Err(e @ PullError::Tls(_)) => {
                let m = e.to_string();
                eprintln!("{m}");
                assert!(
                    m.contains("certificate verification failed") && m.contains(name),
                    "{m}"
                );
            }
            other => panic!("expected a certificate error with CA {ca:?}, got {other:?}"),
        }
    }

    // Loopback is plain HTTP unless told otherwise: the TLS registry refuses that.
    let store = tempfile::tempdir().unwrap();
    let plain = Puller::new(
        Arc::new(ContentStore::open(store.path()).unwrap()),
        PullerOptions {
            extra_ca: Some(env.path("ca.crt")),
            ..Default::default()
        },
    )
    .unwrap();
    match plain.pull(&image, creds).await {
        Err(PullError::Registry {
            status: 400,
            message,
        }) => {
            assert!(message.contains("HTTPS"), "{message}")
        }
        other => panic!("expected the registry's 400 for plain HTTP, got {other:?}"),
    }

    let (puller, _store) = env.puller(name, Some("ca.crt"));
    // Wrong or no credentials: the token service refuses them.
    for (creds, what) in [
        (Some((USER, "wrong")), "with the credentials given"),
        (None, "without credentials"),
    ] {
        match puller.pull(&image, creds).await {
            Err(e @ PullError::Auth(_)) => {
                let m = e.to_string();
                eprintln!("{m}");
                assert!(
                    m.contains(&env.tokens.realm)
                        && m.contains("401")
                        && m.contains(what)
                        && m.contains("invalid username or password"),
                    "{m}"
                );
            }
            other => panic!("expected the token service to refuse, got {other:?}"),
        }
    }

    // A token the registry cannot verify (signed by a key outside its root bundle).
    env.tokens.forge.store(true, Ordering::SeqCst);
    match puller.pull(&image, creds).await {
        Err(e @ PullError::Auth(_)) => {
            let m = e.to_string();
            eprintln!("{m}");
            assert!(m.contains("refused the token") && m.contains(name), "{m}");
        }
        other => panic!("expected the registry to refuse a forged token, got {other:?}"),
    }
    // An honest token again: the refused one was not kept.
    env.tokens.forge.store(false, Ordering::SeqCst);
    let pulled = puller.pull(&image, creds).await.unwrap();
    assert_eq!(pulled.manifest_digest, env.manifest);
}
