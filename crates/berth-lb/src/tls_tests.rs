//! Targets over TLS and HTTP/2 with real sockets: HTTPS target groups, ProtocolVersion
//! HTTP2 and GRPC, their health checks, and least outstanding requests. The targets are
//! hyper servers on loopback, with a self-signed certificate made by `openssl`.

use crate::health::{check, Outcome};
use crate::proxy::testing::front_of as front;
use crate::world::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// A self-signed certificate and its key, made once.
fn cert() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    static PEM: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    let (c, k) = PEM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=target", "-keyout"])
            .arg(&k)
            .arg("-out")
            .arg(&c)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (std::fs::read(&c).unwrap(), std::fs::read(&k).unwrap())
    });
    (
        CertificateDer::from_pem_slice(c).unwrap(),
        PrivateKeyDer::from_pem_slice(k).unwrap(),
    )
}

/// What a target was asked: the protocol, whether over TLS, the authority it was
/// asked for (Host or :authority) and the path.
fn describe(req: &Request<hyper::body::Incoming>, tls: bool) -> String {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get("host")
                .map(|h| h.to_str().unwrap().to_string())
        })
        .unwrap_or_default();
    format!(
        "{:?} tls={tls} authority={authority} path={}",
        req.version(),
        req.uri().path()
    )
}

type TargetBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A target's answer: gRPC calls (content-type application/grpc) get grpc-status 0 on
/// `/ok` paths and 12 otherwise, in trailers; anything else its own description, with
/// the request body echoed after it.
async fn answer(req: Request<hyper::body::Incoming>, tls: bool) -> Response<TargetBody> {
    let said = describe(&req, tls);
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/grpc");
    let ok = req.uri().path().ends_with("/ok");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    if grpc {
        let code = if ok { "0" } else { "12" };
        let mut t = hyper::HeaderMap::new();
        t.insert("grpc-status", code.parse().unwrap());
        let b = Full::new(Bytes::new())
            .with_trailers(async move { Some(Ok(t)) })
            .boxed();
        return Response::builder()
            .header("content-type", "application/grpc")
            .body(b)
            .unwrap();
    }
    let mut text = said.into_bytes();
    text.extend_from_slice(&body);
    Response::new(Full::new(Bytes::from(text)).boxed())
}

/// A target on loopback: over TLS if `tls` (ALPN h2 and http/1.1 offered), speaking
/// HTTP/2 when `h2` (for TLS: when the client chose h2 in ALPN) and HTTP/1.1 otherwise.
async fn target(tls: bool, h2: bool) -> SocketAddrV4 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
        unreachable!()
    };
    let acceptor = tls.then(|| {
        let (c, k) = cert();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![c], k)
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    });
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| async move {
                    Ok::<_, std::convert::Infallible>(answer(req, tls).await)
                });
                match acceptor {
                    Some(a) => {
                        let Ok(s) = a.accept(s).await else { return };
                        let alpn_h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                        serve(TokioIo::new(s), alpn_h2, svc).await;
                    }
                    None => serve(TokioIo::new(s), h2, svc).await,
                }
            });
        }
    });
    addr
}

async fn serve<I, S>(io: I, h2: bool, svc: S)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<TargetBody>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, svc)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await;
    }
}

fn group(protocol: &str, version: ProtocolVersion, targets: &[SocketAddrV4]) -> Tg {
    Tg {
        arn: "tg".into(),
        targets_key: String::new(),
        protocol: protocol.into(),
        version,
        in_use: true,
        algorithm: Algorithm::RoundRobin,
        sticky_secs: None,
        health: hc(protocol, version, "/"),
        targets: targets
            .iter()
            .map(|a| Target {
                id: a.ip().to_string(),
                port: a.port(),
                state: "healthy".into(),
                addr: Some(*a),
                drain_deadline: None,
            })
            .collect(),
    }
}

fn hc(protocol: &str, version: ProtocolVersion, path: &str) -> HealthCheck {
    HealthCheck {
        protocol: protocol.into(),
        version,
        port: None,
        path: path.into(),
        interval_secs: 30,
        timeout_secs: 5,
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        codes: if version == ProtocolVersion::Grpc {
            vec![(0, 0)]
        } else {
            vec![(200, 200)]
        },
    }
}

/// One HTTP/1.1 request on a new connection: the whole response (the connection closes).
async fn h1_request(front: SocketAddr, path: &str, body: &str) -> String {
    let mut c = tokio::net::TcpStream::connect(front).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: app.example\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// One HTTP/2 request (prior knowledge): status and body.
async fn h2_request(front: SocketAddr, path: &str, body: &'static str) -> (u16, String) {
    let s = tokio::net::TcpStream::connect(front).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::post(format!("http://app.example{path}"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&b).into_owned())
}

#[tokio::test]
async fn https_groups_reach_their_targets_over_tls() {
    let t = target(true, false).await;
    let f = front(group("HTTPS", ProtocolVersion::Http1, &[t])).await;
    let r = h1_request(f, "/a", "hello").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.ends_with("HTTP/1.1 tls=true authority=app.example path=/ahello"),
        "{r}"
    );
    // Again, on a kept connection: two requests on one client connection.
    let mut c = tokio::net::TcpStream::connect(f).await.unwrap();
    for _ in 0..2 {
        c.write_all(b"GET /k HTTP/1.1\r\nHost: app.example\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"path=/k") {
            let n = c.read(&mut chunk).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
    }
    // An HTTP/2 client's request goes the same way.
    let (status, body) = h2_request(f, "/b", "!").await;
    assert_eq!(status, 200);
    assert_eq!(body, "HTTP/1.1 tls=true authority=app.example path=/b!");
}

#[tokio::test]
async fn http2_groups_reach_their_targets_as_http2() {
    // Over TLS (ALPN h2) and in the clear (prior knowledge).
    for (protocol, tls) in [("HTTPS", true), ("HTTP", false)] {
        let t = target(tls, true).await;
        let f = front(group(protocol, ProtocolVersion::Http2, &[t])).await;
        let want = format!("HTTP/2.0 tls={tls} authority=app.example path=/x");
        let r = h1_request(f, "/x", "body").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains(&format!("{want}body")), "{r}");
        let (status, body) = h2_request(f, "/x", "2").await;
        assert_eq!((status, body), (200, format!("{want}2")));
    }
}

#[tokio::test]
async fn grpc_calls_keep_their_trailers() {
    let t = target(true, true).await;
    let f = front(group("HTTPS", ProtocolVersion::Grpc, &[t])).await;
    let s = tokio::net::TcpStream::connect(f).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    for (path, code) in [("/pkg.Svc/ok", "0"), ("/pkg.Svc/Other", "12")] {
        let req = Request::post(format!("http://app.example{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers");
        assert_eq!(trailers["grpc-status"], code);
    }
    // An HTTP/1.1 client's call, its body chunked: the answer comes back chunked, the
    // trailers after the last chunk.
    let mut c = tokio::net::TcpStream::connect(f).await.unwrap();
    c.write_all(
        b"POST /pkg.Svc/Other HTTP/1.1\r\nHost: app.example\r\nContent-Type: application/grpc\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n\0\0\0\0\0\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("Transfer-Encoding: chunked\r\n"), "{got}");
    assert!(
        got.ends_with("\r\n\r\n0\r\ngrpc-status: 12\r\n\r\n"),
        "{got}"
    );
}

#[tokio::test]
async fn health_checks_speak_tls_http2_and_grpc() {
    let tls1 = target(true, false).await;
    let tls2 = target(true, true).await;
    let clear2 = target(false, true).await;
    let pass = |hc: HealthCheck, addr| async move { check(&hc, addr).await };
    assert_eq!(
        pass(hc("HTTPS", ProtocolVersion::Http1, "/"), tls1).await,
        Outcome::Pass
    );
    // Plain HTTP to a TLS target: no HTTP status comes back.
    assert_eq!(
        pass(hc("HTTP", ProtocolVersion::Http1, "/"), tls1).await,
        Outcome::Fail("Target.FailedHealthChecks", "Health checks failed".into())
    );
    assert_eq!(
        pass(hc("HTTPS", ProtocolVersion::Http2, "/"), tls2).await,
        Outcome::Pass
    );
    assert_eq!(
        pass(hc("HTTP", ProtocolVersion::Http2, "/"), clear2).await,
        Outcome::Pass
    );
    assert_eq!(
        pass(hc("HTTPS", ProtocolVersion::Grpc, "/AWS.ALB/ok"), tls2).await,
        Outcome::Pass
    );
    // grpc-status 12 (UNIMPLEMENTED) against codes "0"; then against "0-99".
    assert_eq!(
        pass(
            hc("HTTPS", ProtocolVersion::Grpc, "/AWS.ALB/healthcheck"),
            tls2
        )
        .await,
        Outcome::Fail(
            "Target.ResponseCodeMismatch",
            "Health checks failed with these codes: [12]".into()
        )
    );
    let mut twelve = hc("HTTP", ProtocolVersion::Grpc, "/AWS.ALB/healthcheck");
    twelve.codes = crate::world::parse_codes("0-99");
    assert_eq!(pass(twelve, clear2).await, Outcome::Pass);
}

/// A target that holds its first request until told to answer (reporting its arrival)
/// and answers any other at once.
async fn held_target() -> (SocketAddrV4, mpsc::UnboundedReceiver<oneshot::Sender<()>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
        unreachable!()
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let (tx, first) = (tx.clone(), first.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let tx = tx.clone();
                    let hold = first.swap(false, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        if hold {
                            let (go, wait) = oneshot::channel();
                            let _ = tx.send(go);
                            let _ = wait.await;
                        }
                        Ok::<_, std::convert::Infallible>(Response::new(
                            Full::new(Bytes::from_static(b"held")).boxed(),
                        ))
                    }
                });
                serve(TokioIo::new(s), false, svc).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn least_outstanding_requests_passes_over_a_busy_target() {
    let (busy, mut arrivals) = held_target().await;
    let idle = target(false, false).await;
    let mut g = group("HTTP", ProtocolVersion::Http1, &[busy, idle]);
    g.algorithm = Algorithm::LeastOutstanding;
    let f = front(g).await;
    // The first request goes to the first target and is held there.
    let first = tokio::spawn(h1_request(f, "/1", ""));
    let release = arrivals.recv().await.unwrap();
    // Round robin would send every other request to the busy target; least outstanding
    // requests sends them all to the idle one.
    for i in 0..4 {
        let r = h1_request(f, &format!("/n{i}"), "").await;
        assert!(r.ends_with(&format!("path=/n{i}")), "{r}");
    }
    release.send(()).unwrap();
    assert!(first.await.unwrap().ends_with("held"));
}
