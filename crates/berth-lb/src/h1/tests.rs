//! The HTTP/1 path against real sockets: an independent HTTP implementation (hyper) or
//! scripted bytes on either side of the load balancer.

use super::*;
use crate::proxy::testing::{front, scripted_target};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpListener;

/// A body of 64 pieces of 1000 bytes whose length is not said in advance (so hyper sends
/// it chunked to an HTTP/1.1 peer).
struct Pieces(u8);

impl hyper::body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 == 64 {
            return Poll::Ready(None);
        }
        let i = self.0;
        self.0 += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![
            b'a' + i % 26;
            1000
        ])))))
    }
}

fn pieces() -> Vec<u8> {
    (0..64u8).flat_map(|i| vec![b'a' + i % 26; 1000]).collect()
}

async fn listen() -> (TcpListener, SocketAddrV4) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
        unreachable!()
    };
    (l, addr)
}

/// A target on hyper: it answers with the request's body, and says in headers what it
/// got (method, path, Host, X-Forwarded-*, trace id, framing). `/stream` answers with
/// `Pieces`, naming a hop-by-hop header in Connection.
async fn echo_target() -> SocketAddrV4 {
    let (l, addr) = listen().await;
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let h = req.headers().clone();
                    let seen = |n: &str| {
                        h.get_all(n)
                            .iter()
                            .map(|v| v.to_str().unwrap().to_string())
                            .collect::<Vec<_>>()
                            .join("|")
                    };
                    let b = Response::builder()
                        .header("x-method", req.method().as_str())
                        .header("x-path", req.uri().to_string())
                        .header("x-host", seen("host"))
                        .header("x-xff", seen("x-forwarded-for"))
                        .header("x-xfport", seen("x-forwarded-port"))
                        .header("x-xfproto", seen("x-forwarded-proto"))
                        .header("x-trace", seen("x-amzn-trace-id"))
                        .header("x-te", seen("transfer-encoding"))
                        .header("x-hop", seen("x-hop"));
                    let body: BoxBody<Bytes, Infallible> = if req.uri().path() == "/stream" {
                        return Ok::<_, Infallible>(
                            b.header("connection", "x-secret")
                                .header("x-secret", "1")
                                .body(Pieces(0).boxed())
                                .unwrap(),
                        );
                    } else {
                        let got = req.into_body().collect().await.unwrap().to_bytes();
                        Full::new(got).boxed()
                    };
                    Ok(b.body(body).unwrap())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/1.1 client connection on hyper.
async fn client(
    front: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<BoxBody<Bytes, Infallible>> {
    let s = TcpStream::connect(front).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

fn header(r: &Response<Incoming>, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Everything the peer sends until it closes the connection.
async fn read_to_end(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn bodies_and_headers_pass_both_ways() {
    let front = front(&[echo_target().await]).await;
    let mut c = client(front).await;
    // A 1 MiB body with a length.
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let req = Request::post("/upload?x=1")
        .header("host", "shop.example.com")
        .header("x-forwarded-for", "192.0.2.7")
        .header("connection", "x-hop")
        .header("x-hop", "dropped")
        .body(Full::new(Bytes::from(big.clone())).boxed())
        .unwrap();
    let r = c.send_request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-method"), "POST");
    assert_eq!(header(&r, "x-path"), "/upload?x=1");
    assert_eq!(header(&r, "x-host"), "shop.example.com");
    assert_eq!(header(&r, "x-xff"), "192.0.2.7, 127.0.0.1");
    assert_eq!(header(&r, "x-xfport"), "80");
    assert_eq!(header(&r, "x-xfproto"), "http");
    assert_eq!(
        header(&r, "x-hop"),
        "",
        "a header named by Connection is hop-by-hop"
    );
    assert!(header(&r, "x-trace").starts_with("Root=1-"));
    let got = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got.len(), big.len());
    assert!(got == big, "the body came back changed");
    // A chunked request body (no length) is forwarded chunked.
    let req = Request::put("/chunked")
        .header("host", "web")
        .body(Pieces(0).boxed())
        .unwrap();
    let r = c.send_request(req).await.unwrap();
    assert_eq!(header(&r, "x-te"), "chunked");
    let got = r.into_body().collect().await.unwrap().to_bytes();
    assert!(got == pieces(), "the chunked body came back changed");
    // A chunked response, on the same connection.
    let req = Request::get("/stream")
        .header("host", "web")
        .body(Full::new(Bytes::new()).boxed())
        .unwrap();
    let r = c.send_request(req).await.unwrap();
    assert_eq!(header(&r, "transfer-encoding"), "chunked");
    assert_eq!(
        header(&r, "x-secret"),
        "",
        "named by the target's Connection"
    );
    let got = r.into_body().collect().await.unwrap().to_bytes();
    assert!(got == pieces(), "the chunked response came back changed");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let front = front(&[echo_target().await]).await;
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(
        b"GET /first HTTP/1.1\r\nHost: web\r\n\r\n\
          POST /second HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabc\
          GET /third HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_to_end(&mut s).await;
    let at = |p: &str| got.find(&format!("x-path: {p}")).expect(p);
    assert!(
        at("/first") < at("/second") && at("/second") < at("/third"),
        "{got}"
    );
    assert!(got.contains("\r\n\r\nabc"), "{got}");
    assert_eq!(got.matches("HTTP/1.1 200").count(), 3, "{got}");
}

#[tokio::test]
async fn an_http10_client_gets_a_chunked_body_decoded() {
    let front = front(&[echo_target().await]).await;
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(b"GET /stream HTTP/1.0\r\n\r\n").await.unwrap();
    let got = read_to_end(&mut s).await;
    let (head, body) = got.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        head.contains("x-host: web.elb.localhost"),
        "the DNS name stands in: {head}"
    );
    assert_eq!(body.as_bytes(), pieces().as_slice());
}

#[tokio::test]
async fn kept_connections_the_target_closed_are_replaced() {
    // The target closes after each answer without saying so. A GET is sent again on a
    // new connection; a POST (not to be sent twice) checks the kept one first.
    let (target, _) =
        scripted_target(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    let front = front(&[target]).await;
    let mut c = client(front).await;
    for i in 0..6 {
        let req = Request::builder()
            .method(if i % 2 == 0 { "GET" } else { "POST" })
            .uri("/")
            .header("host", "web")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        let r = c.send_request(req).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            &r.into_body().collect().await.unwrap().to_bytes()[..],
            b"ok"
        );
    }
}

#[tokio::test]
async fn a_body_that_ends_with_the_connection_ends_the_client_connection() {
    let (target, _) = scripted_target(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nhello", true).await;
    let front = front(&[target]).await;
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_end(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("Connection: close\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nhello"), "{got}");
}

#[tokio::test]
async fn a_target_that_breaks_its_chunked_body_gets_502() {
    let (target, _) = scripted_target(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        true,
    )
    .await;
    let front = front(&[target]).await;
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_end(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{got}");
}

#[tokio::test]
async fn bad_requests_get_400_and_the_connection_ends() {
    let front = front(&[echo_target().await]).await;
    for (req, status) in [
        (&b"GARBAGE\r\n\r\n"[..], "400"),
        (b"GET / HTTP/1.1\r\n\r\n", "400"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "400",
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "501"),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "405"),
    ] {
        let mut s = TcpStream::connect(front).await.unwrap();
        s.write_all(req).await.unwrap();
        let got = read_to_end(&mut s).await;
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status} ")),
            "{}: {got}",
            String::from_utf8_lossy(req)
        );
        assert!(got.contains("Server: awselb/2.0"), "{got}");
    }
    // Too large a head.
    let mut s = TcpStream::connect(front).await.unwrap();
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    req.extend(std::iter::repeat_n(b"X-Pad: 0123456789abcdef\r\n", 4000).flatten());
    let _ = s.write_all(&req).await;
    let got = read_to_end(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
    // A broken chunked body.
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        .await
        .unwrap();
    assert!(read_to_end(&mut s).await.starts_with("HTTP/1.1 400 "));
    // And the load balancer still serves.
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(read_to_end(&mut s).await.starts_with("HTTP/1.1 200 "));
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let front = front(&[echo_target().await]).await;
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(b"PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    let mut got = vec![0u8; 25];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"hello") {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 "));
}

#[tokio::test]
async fn a_target_that_refuses_gets_502_and_the_client_connection_goes_on() {
    let (l, closed) = listen().await;
    drop(l);
    let front = front(&[closed]).await;
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_to_end(&mut s).await;
    assert_eq!(got.matches("HTTP/1.1 502 Bad Gateway").count(), 2, "{got}");
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    let front = front(&[echo_target().await]).await;
    let s = TcpStream::connect(front).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(s),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::post("http://web.example/h2")
        .body(Full::new(Bytes::from_static(b"over h2")))
        .unwrap();
    let r = send.send_request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-host"), "web.example");
    let got = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&got[..], b"over h2");
}

#[tokio::test]
async fn an_upgrade_switches_both_connections_to_the_new_protocol() {
    // A target that switches when asked to with both headers, then echoes what it gets.
    let (l, target) = listen().await;
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        if !(head.contains("\r\nupgrade: websocket\r\n") && head.contains("connection: upgrade")) {
            s.write_all(b"HTTP/1.1 400 No\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            return;
        }
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .await
            .unwrap();
        // Bytes after the head are the new protocol's already.
        let at = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        s.write_all(&buf[at..]).await.unwrap();
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => s.write_all(&chunk[..n]).await.unwrap(),
            }
        }
    });
    let front = front(&[target]).await;
    let mut s = TcpStream::connect(front).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.ends_with(b"early") {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
    assert!(text.contains("\r\nConnection: upgrade\r\n"), "{text}");
    // Both ways, as long as the client likes.
    for word in ["ping", "pong"] {
        s.write_all(word.as_bytes()).await.unwrap();
        let mut back = vec![0u8; word.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, word.as_bytes());
    }
}

#[test]
fn chunked_bodies_parse_in_any_pieces() {
    let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    // Whole, and fed one byte at a time: the same end, the same data.
    for step in [body.len(), 1, 3] {
        let mut c = Chunks::default();
        let (mut at, mut data) = (0, Vec::new());
        let mut ended = false;
        while !ended {
            let end = (at + step).min(body.len());
            let (n, e) = c.scan(&body[at..end], Some(&mut data)).unwrap();
            at += n;
            ended = e;
        }
        assert_eq!(&body[at..], b"NEXT", "step {step}");
        assert_eq!(data, b"hello world");
    }
    for bad in [
        &b"x\r\n"[..],
        b"5\r\nhelloXX",
        b"\r\n",
        b"fffffffffffffffff\r\n",
    ] {
        assert!(Chunks::default().scan(bad, None).is_err(), "{:?}", bad);
    }
}
