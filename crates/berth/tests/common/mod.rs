//! Test harness: a real `berth up` on an ephemeral port with its own data directory,
//! and clients for it (aws-sdk-ecs, and raw HTTP for malformed requests).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().to_path_buf();
        let mut s = Server::start_in(&data, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// Start on a fresh ephemeral port over an existing data directory.
    pub fn start_in(data: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .env("BERTH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        // berth logs the address it bound; read until we see it (bounded by a deadline).
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("listen=").nth(1) {
                        let addr = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("berth did not report its address");
        let s = Server {
            child,
            addr,
            data: data.to_path_buf(),
            _tmp: None,
        };
        s.wait_healthy();
        s
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _, _)) = self.raw("GET", "/_berth/health", &[], b"") {
                return;
            }
            assert!(Instant::now() < deadline, "berth never became healthy");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        self.ecs_as("AKIDEXAMPLE", "secret", "us-east-1")
    }

    pub fn ecs_as(&self, key: &str, secret: &str, region: &str) -> aws_sdk_ecs::Client {
        let http = aws_smithy_http_client::Builder::new().build_http();
        let conf = aws_sdk_ecs::Config::builder()
            .endpoint_url(self.url())
            .region(aws_sdk_ecs::config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                key, secret, None, None, "test",
            ))
            .http_client(http)
            .build();
        aws_sdk_ecs::Client::from_conf(conf)
    }

    /// One raw HTTP/1.1 request; returns (status, headers, body).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, String, String)> {
        raw_at(&self.addr, method, path, headers, body)
    }

    /// An ECS JSON call by hand (X-Amz-Target), for bodies an SDK would never send.
    pub fn ecs_raw(&self, op: &str, body: &[u8]) -> (u16, serde_json::Value) {
        let target = format!("AmazonEC2ContainerServiceV20141113.{op}");
        let (status, _, body) = self
            .raw(
                "POST",
                "/",
                &[
                    ("X-Amz-Target", &target),
                    ("Content-Type", "application/x-amz-json-1.1"),
                ],
                body,
            )
            .expect("raw request");
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }
}

/// One raw HTTP/1.1 request to `addr`; returns (status, head, body).
pub fn raw_at(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The AWS error code of an SDK error.
pub fn code<E: aws_sdk_ecs::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// Create an ECR repository through the ECR API.
pub fn create_repo(s: &Server, name: &str) {
    let (status, _, body) = s
        .raw(
            "POST",
            "/",
            &[
                (
                    "X-Amz-Target",
                    "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
                ),
                ("Content-Type", "application/x-amz-json-1.1"),
            ],
            serde_json::json!({"repositoryName": name})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
}

/// Push a blob in one request; returns its digest.
pub fn push_blob(s: &Server, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let (status, head, body) = s
        .raw(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[],
            data,
        )
        .unwrap();
    assert_eq!(status, 201, "{head}{body}");
    d
}
