//! The benchmark ceiling: the smallest tokio + hyper 1 HTTP/1.1 server that answers every
//! request with a fixed small JSON body. It serves connections the way `src/edge.rs`
//! does (multi-thread runtime, accept loop, TCP_NODELAY, `service_fn`, http1 `Builder`,
//! graceful-shutdown watcher, one task per connection), and it reads the request body,
//! as Berth must, but does no routing, parsing or storage. `bench/ecs_api.sh` compares
//! Berth's read path against it.
//!
//! Usage: `cargo run --release -p berth --example ceiling -- 127.0.0.1:PORT [BYTES]`
//! With BYTES, the body is padded to that size, so a response-heavy operation (a page of
//! ListTaskDefinitions) can be compared with a ceiling that sends as much.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::net::SocketAddr;

const BODY: &[u8] = br#"{"status":"ok","taskDefinitionArns":[]}"#;

/// The body to answer with: the small fixed one, or padded JSON of exactly `size` bytes.
fn body(size: Option<usize>) -> Bytes {
    match size {
        Some(n) if n > BODY.len() + 12 => {
            let pad = n - r#"{"padding":""}"#.len();
            Bytes::from(format!(r#"{{"padding":"{}"}}"#, "x".repeat(pad)))
        }
        _ => Bytes::from_static(BODY),
    }
}

async fn handle(req: Request<Incoming>, body: Bytes) -> Response<Full<Bytes>> {
    // Drain the body like a real handler would before answering.
    let _ = req.into_body().collect().await;
    Response::builder()
        .status(200)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "00000000-0000-0000-0000-000000000000")
        .body(Full::new(body))
        .expect("valid response")
}

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8089".to_string())
        .parse()
        .expect("usage: ceiling ADDR [BYTES] (e.g. 127.0.0.1:8089)");
    let reply = body(
        std::env::args()
            .nth(2)
            .map(|n| n.parse().expect("BYTES must be a number")),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        eprintln!(
            "ceiling listening on {}",
            listener.local_addr().expect("local addr")
        );
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let shutdown = tokio::signal::ctrl_c();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(s) => s,
                        Err(e) => {
                            eprintln!("accept failed: {e}");
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let reply = reply.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let reply = reply.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(req, reply).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                _ = &mut shutdown => break,
            }
        }
    });
}
