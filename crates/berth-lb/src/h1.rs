//! The ALB's HTTP/1 path, written for the job rather than on a general HTTP library: a
//! proxy mostly moves bytes, so it parses only the head of each message (httparse),
//! writes the forwarded head and whatever body bytes already arrived in one write, and
//! copies the rest as it comes. One client connection is one task; it keeps its own
//! keep-alive connections to the targets it used (up to `KEPT`), so its requests take
//! no lock and no pool. Measured against nginx in BENCHMARKS.md, "Load balancers".
//!
//! Requests are forwarded as HTTP/1.1 with their framing kept (Content-Length or
//! chunked); hop-by-hop headers are dropped; responses keep theirs unless the client
//! cannot take them (a chunked body to an HTTP/1.0 client is decoded, and the connection
//! then closed). Target connections are TLS for HTTPS groups (tls.rs); requests to
//! HTTP2/GRPC groups go through `forward_h2` as HTTP/2 instead.

use crate::proxy::{cookie_headers, strip_port, write_trace_id, Canned, Decision, Slot};
use crate::proxy::{ListenerView, HOP_BY_HOP};
use crate::rules::{Headers, RequestFacts};
use crate::tls::Conn;
use bytes::{Buf, BytesMut};
use hyper::StatusCode;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The largest request or response head accepted (an ALB's limit on a request's headers).
const MAX_HEAD: usize = 64 * 1024;
/// Header lines a head may have.
const MAX_HEADERS: usize = 128;
/// Target connections one client connection keeps (round robin over a group of up to
/// this many targets reuses them all).
const KEPT: usize = 8;
/// How much to read at once while copying a body.
const CHUNK: usize = 32 * 1024;
/// How much room to read a head into (what a connection's buffers shrink back to after
/// a large body, so that idle keep-alive connections stay small).
const HEAD_CHUNK: usize = 8 * 1024;

/// The most of a request's body read for an HTTP/2 target (it is sent whole).
const MAX_H2_BODY: usize = 64 << 20;

/// A request body gathered for an HTTP/2 target: writes fail past `MAX_H2_BODY`.
struct Limited<'a>(&'a mut Vec<u8>);

impl AsyncWrite for Limited<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let v = &mut self.get_mut().0;
        if v.len() + buf.len() > MAX_H2_BODY {
            return std::task::Poll::Ready(Err(io::Error::other("request body too large")));
        }
        v.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// No body.
    Empty,
    Length(u64),
    Chunked,
    /// At the end of the connection (responses only).
    Close,
}

/// A keep-alive connection to a target with what was read from it beyond the last
/// response.
struct Upstream {
    addr: SocketAddrV4,
    /// Over TLS (an HTTPS target group).
    tls: bool,
    stream: Conn,
    buf: BytesMut,
    /// Served a request before: it may have been closed by the target meanwhile.
    reused: bool,
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
    /// The bytes of the next write (a head and the body bytes at hand).
    out: Vec<u8>,
    kept: Vec<Upstream>,
    peer: SocketAddr,
    peer_ip: String,
}

/// Serve HTTP/1 requests on a client connection until either side closes it. `buf`
/// holds what was read from it already.
pub(crate) async fn serve(stream: TcpStream, buf: BytesMut, peer: SocketAddr, slot: &Slot) {
    let mut c = Client {
        stream,
        buf,
        out: Vec::with_capacity(HEAD_CHUNK),
        kept: Vec::new(),
        peer,
        peer_ip: peer.ip().to_string(),
    };
    loop {
        match c.request(slot).await {
            Ok(true) => {
                shrink(&mut c.buf);
                if c.out.capacity() > 4 * HEAD_CHUNK {
                    c.out = Vec::with_capacity(HEAD_CHUNK);
                }
            }
            Ok(false) | Err(_) => return,
        }
    }
}

/// An empty buffer that grew for a large body goes back to a head's size.
fn shrink(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 2 * HEAD_CHUNK {
        *buf = BytesMut::with_capacity(HEAD_CHUNK);
    }
}

/// What the head of a request says, apart from the rules' business.
struct RequestHead {
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    /// `TE: trailers`: the client takes trailers (HTTP/2 targets' are passed on).
    te_trailers: bool,
    /// A HEAD request: its response has no body whatever its headers say.
    head: bool,
    /// A method that may be sent again (RFC 9110 section 9.2.2).
    idempotent: bool,
    /// The client asks to switch protocols (`Upgrade`, with `Connection: upgrade`), as a
    /// WebSocket handshake does.
    upgrade: bool,
    http10: bool,
}

/// A request that cannot be served: the status to answer (the connection then closes).
struct Refuse(StatusCode);

impl Client {
    /// Read and answer one request. Ok(true): the connection goes on.
    async fn request(&mut self, slot: &Slot) -> io::Result<bool> {
        let idle = slot.read().expect("lock").idle_timeout();
        // What the listener serves when the head is complete (a keep-alive connection may
        // wait long for its next request: the targets may have changed meanwhile).
        let view;
        // A whole head, or the connection ends (idle, closed, or too large a head). The
        // head is parsed where it lies, and the head to forward written from it.
        let decided = loop {
            if !self.buf.is_empty() {
                // Left uninitialised: zeroing the array cost more than parsing.
                let mut hs = [const { MaybeUninit::uninit() }; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut []);
                match req.parse_with_uninit_headers(&self.buf, &mut hs) {
                    Ok(httparse::Status::Complete(n)) => {
                        self.out.clear();
                        view = slot.read().expect("lock").clone();
                        let d = prepare(&req, &view, &self.peer, &self.peer_ip, &mut self.out);
                        self.buf.advance(n);
                        break d;
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => {}
                    Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                        return self
                            .refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
                            .await;
                    }
                    Err(_) => return self.refuse(StatusCode::BAD_REQUEST).await,
                }
            }
            self.buf.reserve(HEAD_CHUNK);
            match timeout(idle, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Ok(false),
            }
        };
        let (head, decision) = match decided {
            Ok(d) => d,
            Err(Refuse(status)) => return self.refuse(status).await,
        };
        match decision {
            Decision::Reply(canned) => {
                // The request's body is not wanted; a client waiting for 100 Continue
                // will not send it, others will, so read it past.
                let keep = head.keep_alive && !head.expect_continue;
                self.out.clear();
                write_canned(&mut self.out, &canned, keep, head.head);
                self.stream.write_all(&self.out).await?;
                if keep && head.framing != Framing::Empty {
                    let mut body = Body::new(head.framing);
                    let past = copy_body(
                        &mut self.stream,
                        &mut self.buf,
                        &mut body,
                        None::<&mut TcpStream>,
                        &mut self.out,
                        false,
                        view.idle_timeout(),
                    )
                    .await;
                    return Ok(past.is_ok());
                }
                if !keep && head.framing != Framing::Empty {
                    self.linger().await;
                }
                Ok(keep)
            }
            Decision::Forward { backend, cookies } => {
                let _inflight = backend.inflight();
                if backend.h2() {
                    return self
                        .forward_h2(&view, &head, backend.addr(), backend.tls(), &cookies)
                        .await;
                }
                self.forward(&view, &head, backend.addr(), backend.tls(), &cookies)
                    .await
            }
        }
    }

    /// Answer a request that cannot be read on, and close the connection.
    async fn refuse(&mut self, status: StatusCode) -> io::Result<bool> {
        self.out.clear();
        write_canned(&mut self.out, &Canned::error(status), false, false);
        self.stream.write_all(&self.out).await?;
        self.linger().await;
        Ok(false)
    }

    /// Close after an answer while the client may still be sending: closing a socket
    /// with unread data resets the connection, and the client could lose the answer. So
    /// end our side first and read what comes for a while (as nginx's lingering close).
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let mut sink = [0u8; 16 * 1024];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut left = 1 << 20;
        while left > 0 {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => left -= n.min(left),
                _ => return,
            }
        }
    }

    /// Answer with `status`; go on only if the client wants to and its request's body
    /// was all read.
    async fn fail(
        &mut self,
        status: StatusCode,
        head: &RequestHead,
        body: &Body,
    ) -> io::Result<bool> {
        let keep = head.keep_alive && body.done();
        self.out.clear();
        write_canned(&mut self.out, &Canned::error(status), keep, false);
        self.stream.write_all(&self.out).await?;
        if !keep {
            self.linger().await;
        }
        Ok(keep)
    }

    /// Send the request whose head is in `out` to `addr` and its response back.
    async fn forward(
        &mut self,
        view: &ListenerView,
        head: &RequestHead,
        addr: SocketAddrV4,
        tls: bool,
        cookies: &[(&'static str, String, u64)],
    ) -> io::Result<bool> {
        let idle = view.idle_timeout();
        // The request body's bytes at hand go in the same write as its head.
        let mut body = Body::new(head.framing);
        if body.take(&mut self.buf, &mut self.out, false).is_err() {
            return self.refuse(StatusCode::BAD_REQUEST).await;
        }
        let whole = body.done();
        if head.expect_continue && !whole {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        // Send; a kept connection the target closed meanwhile gets one more try on a new
        // one, when the request is all in hand (the target never read it). A request that
        // may not be sent twice first checks that the kept connection is still open.
        let mut up = match self.upstream(addr, tls, !(whole && head.idempotent)).await {
            Some(up) => up,
            None => return self.fail(StatusCode::BAD_GATEWAY, head, &body).await,
        };
        let mut sent = up.stream.write_all(&self.out).await;
        if sent.is_err() && up.reused && whole {
            up = match self.upstream_new(addr, tls).await {
                Some(up) => up,
                None => return self.fail(StatusCode::BAD_GATEWAY, head, &body).await,
            };
            sent = up.stream.write_all(&self.out).await;
        }
        if sent.is_err() {
            return self.fail(StatusCode::BAD_GATEWAY, head, &body).await;
        }
        if !whole {
            let copied = copy_body(
                &mut self.stream,
                &mut self.buf,
                &mut body,
                Some(&mut up.stream),
                &mut Vec::new(),
                false,
                idle,
            )
            .await;
            match copied {
                Ok(()) => {}
                // The client went away or sent a broken body: nothing to answer.
                Err(Copy::Source) => return Ok(false),
                Err(Copy::Sink) => return self.fail(StatusCode::BAD_GATEWAY, head, &body).await,
            }
        }
        // The response head (1xx interim responses are passed over), and the client's
        // copy of it written from where it lies.
        let relay = loop {
            let out = &mut self.out;
            let got = read_response_head(&mut up, idle, |r| {
                let resp = response_head(r)?;
                let upgraded = resp.status == 101;
                if upgraded && !head.upgrade {
                    return None;
                }
                if resp.status / 100 == 1 && !upgraded {
                    return Some(None);
                }
                let framing = match resp.framing {
                    _ if head.head || resp.status == 204 || resp.status == 304 => Framing::Empty,
                    f => f,
                };
                let decode = framing == Framing::Chunked && head.http10;
                let client_keep = head.keep_alive && framing != Framing::Close && !decode;
                out.clear();
                let conn = if upgraded {
                    Connection::Upgrade
                } else if !client_keep {
                    Connection::Close
                } else if head.http10 {
                    Connection::KeepAlive
                } else {
                    Connection::Default
                };
                write_response_head(out, r, framing, decode, conn, cookies);
                Some(Some(Relay {
                    framing,
                    decode,
                    client_keep,
                    target_keep: resp.keep_alive && framing != Framing::Close,
                    upgraded,
                }))
            })
            .await;
            match got {
                Ok((n, None)) => up.buf.advance(n),
                Ok((n, Some(relay))) => {
                    up.buf.advance(n);
                    break relay;
                }
                Err(HeadError::Timeout) => {
                    return self.fail(StatusCode::GATEWAY_TIMEOUT, head, &body).await
                }
                Err(HeadError::Closed) if up.reused && whole && head.idempotent => {
                    // Closed before answering a request it was sent: a kept connection
                    // the target had closed; once more on a new one.
                    up = match self.upstream_new(addr, tls).await {
                        Some(u) => u,
                        None => return self.fail(StatusCode::BAD_GATEWAY, head, &body).await,
                    };
                    if up.stream.write_all(&self.out).await.is_err() {
                        return self.fail(StatusCode::BAD_GATEWAY, head, &body).await;
                    }
                }
                Err(_) => return self.fail(StatusCode::BAD_GATEWAY, head, &body).await,
            }
        };
        let Relay {
            framing,
            decode,
            client_keep,
            target_keep,
            upgraded,
        } = relay;
        if upgraded {
            // Switched: from here the connections carry the new protocol both ways, with
            // what either side sent after the heads first.
            self.out.extend_from_slice(&up.buf);
            self.stream.write_all(&self.out).await?;
            up.stream.write_all(&self.buf).await?;
            let _ = tokio::io::copy_bidirectional(&mut self.stream, &mut up.stream).await;
            return Ok(false);
        }
        let mut rbody = Body::new(framing);
        if rbody.take(&mut up.buf, &mut self.out, decode).is_err() {
            // A broken body before a byte went to the client: the target failed.
            return self.fail(StatusCode::BAD_GATEWAY, head, &body).await;
        }
        self.stream.write_all(&self.out).await?;
        if !rbody.done() {
            let copied = copy_body(
                &mut up.stream,
                &mut up.buf,
                &mut rbody,
                Some(&mut self.stream),
                &mut self.out,
                decode,
                idle,
            )
            .await;
            if copied.is_err() {
                return Ok(false);
            }
            if decode {
                return Ok(false);
            }
        }
        if target_keep && up.buf.is_empty() {
            up.reused = true;
            shrink(&mut up.buf);
            if self.kept.len() >= KEPT {
                self.kept.remove(0);
            }
            self.kept.push(up);
        }
        Ok(client_keep)
    }

    /// Send the request whose head is in `out` to an HTTP/2 target (ProtocolVersion
    /// HTTP2 or GRPC) and its response back as HTTP/1.1. The request's body is read
    /// whole first (at most `MAX_H2_BODY`); the response's is passed on as it comes,
    /// chunked unless the target gave its length, with its trailers.
    async fn forward_h2(
        &mut self,
        view: &ListenerView,
        head: &RequestHead,
        addr: SocketAddrV4,
        tls: bool,
        cookies: &[(&'static str, String, u64)],
    ) -> io::Result<bool> {
        use http_body_util::BodyExt;
        let idle = view.idle_timeout();
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut hs);
        if !matches!(req.parse(&self.out), Ok(httparse::Status::Complete(_))) {
            return self.refuse(StatusCode::BAD_REQUEST).await;
        }
        let mut b = hyper::Request::builder().method(req.method.unwrap_or("GET"));
        let mut host = view.dns_name().to_string();
        let te_trailers = head.te_trailers;
        for h in req.headers.iter() {
            let n = h.name;
            if n.eq_ignore_ascii_case("host") {
                host = String::from_utf8_lossy(h.value).into_owned();
            } else if !hop_by_hop(req.headers, n, true) && !n.eq_ignore_ascii_case("expect") {
                b = b.header(n, h.value);
            }
        }
        let path = req.path.unwrap_or("/").to_string();
        let Ok(request) = b.body(()) else {
            return self.refuse(StatusCode::BAD_REQUEST).await;
        };
        let (mut parts, ()) = request.into_parts();
        if !crate::proxy::to_h2(&mut parts, addr, tls, &host, &path, te_trailers) {
            return self.refuse(StatusCode::BAD_REQUEST).await;
        }
        // The body, whole.
        let mut body = Body::new(head.framing);
        let mut data = Vec::new();
        if !body.done() {
            if head.expect_continue {
                self.stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await?;
            }
            let mut scratch = Vec::new();
            let mut sink = Limited(&mut data);
            let copied = copy_body(
                &mut self.stream,
                &mut self.buf,
                &mut body,
                Some(&mut sink),
                &mut scratch,
                true,
                idle,
            )
            .await;
            match copied {
                Ok(()) => {}
                Err(Copy::Source) => return Ok(false),
                Err(Copy::Sink) => return self.refuse(StatusCode::PAYLOAD_TOO_LARGE).await,
            }
        }
        let up = hyper::Request::from_parts(
            parts,
            http_body_util::Full::new(bytes::Bytes::from(data))
                .map_err(|never| match never {})
                .boxed(),
        );
        let resp = match timeout(idle, crate::proxy::send_h2(addr, tls, up)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(target = %addr, error = %e, "target failed");
                return self.fail(StatusCode::BAD_GATEWAY, head, &body).await;
            }
            Err(_) => return self.fail(StatusCode::GATEWAY_TIMEOUT, head, &body).await,
        };
        let (rp, mut rbody) = resp.into_parts();
        let status = rp.status.as_u16();
        let empty = head.head || status == 204 || status == 304;
        let length = rp.headers.contains_key(hyper::header::CONTENT_LENGTH);
        // Chunked when the length is unknown, and for a client that takes trailers
        // (gRPC's grpc-status comes in them, after a body whose length may be given).
        let chunked = !empty && (!length || te_trailers) && !head.http10;
        let length = length && !chunked;
        let keep = head.keep_alive && (empty || length || chunked);
        self.out.clear();
        let _ = write!(
            self.out,
            "HTTP/1.1 {status} {}\r\n",
            rp.status.canonical_reason().unwrap_or("")
        );
        for (n, v) in rp.headers.iter() {
            if HOP_BY_HOP.contains(&n.as_str()) || (chunked && n == hyper::header::CONTENT_LENGTH) {
                continue;
            }
            self.out.extend_from_slice(n.as_str().as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(v.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        if chunked {
            self.out
                .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        for (name, value, secs) in cookies {
            for c in cookie_headers(name, value, *secs) {
                let _ = write!(self.out, "Set-Cookie: {c}\r\n");
            }
        }
        match (keep, head.http10) {
            (false, _) => self.out.extend_from_slice(b"Connection: close\r\n"),
            (true, true) => self.out.extend_from_slice(b"Connection: keep-alive\r\n"),
            (true, false) => {}
        }
        self.out.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.out).await?;
        if empty {
            return Ok(keep);
        }
        let mut trailers = None;
        loop {
            let frame = match timeout(idle, rbody.frame()).await {
                Ok(Some(Ok(f))) => f,
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => return Ok(false),
            };
            match frame.into_data() {
                Ok(d) if d.is_empty() => {}
                Ok(d) if chunked => {
                    self.out.clear();
                    let _ = write!(self.out, "{:x}\r\n", d.len());
                    self.out.extend_from_slice(&d);
                    self.out.extend_from_slice(b"\r\n");
                    self.stream.write_all(&self.out).await?;
                }
                Ok(d) => self.stream.write_all(&d).await?,
                Err(f) => trailers = f.into_trailers().ok(),
            }
        }
        if chunked {
            self.out.clear();
            self.out.extend_from_slice(b"0\r\n");
            for (n, v) in trailers.iter().flatten() {
                self.out.extend_from_slice(n.as_str().as_bytes());
                self.out.extend_from_slice(b": ");
                self.out.extend_from_slice(v.as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
            self.out.extend_from_slice(b"\r\n");
            self.stream.write_all(&self.out).await?;
        }
        Ok(keep)
    }

    /// A kept connection to `addr` (if `check`, one that is still open), or a new one.
    async fn upstream(&mut self, addr: SocketAddrV4, tls: bool, check: bool) -> Option<Upstream> {
        while let Some(at) = self
            .kept
            .iter()
            .position(|u| u.addr == addr && u.tls == tls)
        {
            let up = self.kept.remove(at);
            if !check {
                return Some(up);
            }
            if up.stream.idle_and_open() {
                return Some(up);
            }
        }
        self.upstream_new(addr, tls).await
    }

    async fn upstream_new(&self, addr: SocketAddrV4, tls: bool) -> Option<Upstream> {
        let stream = match crate::tls::open(addr, tls, false).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(target = %addr, error = %e, "target refused");
                return None;
            }
        };
        Some(Upstream {
            addr,
            tls,
            stream,
            buf: BytesMut::with_capacity(HEAD_CHUNK),
            reused: false,
        })
    }
}

/// Check a request's head, apply the rules, and write the head to forward into `out`.
fn prepare<'v>(
    req: &httparse::Request,
    view: &'v ListenerView,
    peer: &SocketAddr,
    peer_ip: &str,
    out: &mut Vec<u8>,
) -> Result<(RequestHead, Decision<'v>), Refuse> {
    let bad = Refuse(StatusCode::BAD_REQUEST);
    let method = req.method.ok_or(Refuse(StatusCode::BAD_REQUEST))?;
    let target = req.path.ok_or(Refuse(StatusCode::BAD_REQUEST))?;
    let http10 = req.version == Some(0);
    let headers: &[httparse::Header] = req.headers;
    if method == "CONNECT" {
        return Err(Refuse(StatusCode::METHOD_NOT_ALLOWED));
    }
    // Framing and connection handling.
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    let mut te_trailers = false;
    let mut host: Option<&str> = None;
    let mut connection_named = false;
    let mut upgrade_token = false;
    let mut upgrade = None;
    for h in headers {
        let n = h.name;
        if n.eq_ignore_ascii_case("content-length") {
            let v = content_length(h.value).ok_or(Refuse(StatusCode::BAD_REQUEST))?;
            if length.is_some_and(|l| l != v) {
                return Err(bad);
            }
            length = Some(v);
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            // Only chunked, last, is a framing a proxy can pass on.
            if http10 || !ends_chunked(h.value) {
                return Err(Refuse(StatusCode::NOT_IMPLEMENTED));
            }
            chunked = true;
        } else if n.eq_ignore_ascii_case("connection") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                } else if !t.is_empty() {
                    connection_named = true;
                    upgrade_token |= t.eq_ignore_ascii_case(b"upgrade");
                }
            }
        } else if n.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(h.value);
        } else if n.eq_ignore_ascii_case("te") {
            te_trailers |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"trailers"));
        } else if n.eq_ignore_ascii_case("expect") {
            if h.value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = !http10;
            } else {
                return Err(Refuse(StatusCode::EXPECTATION_FAILED));
            }
        } else if n.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(bad);
            }
            host = Some(std::str::from_utf8(h.value).map_err(|_| Refuse(StatusCode::BAD_REQUEST))?);
        }
    }
    if chunked && length.is_some() {
        // Both framings at once: a request-smuggling attempt as often as not.
        return Err(bad);
    }
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    };
    // The request target: origin form, or absolute form (its authority stands in for Host).
    let (path_query, authority) = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => {
            let at = rest.find('/').unwrap_or(rest.len());
            let pq = if at == rest.len() { "/" } else { &rest[at..] };
            (pq, Some(&rest[..at]))
        }
        None => (target, None),
    };
    let host_full = match host.or(authority).filter(|h| !h.is_empty()) {
        Some(h) => h,
        // RFC 9112: an HTTP/1.1 request without Host is malformed.
        None if !http10 => return Err(bad),
        None => view.dns_name(),
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let facts = RequestFacts {
        method,
        path,
        host: strip_port(host_full),
        query,
        headers: Headers::Raw(headers),
        source: peer.ip(),
    };
    let decision = view.decide(&facts);
    let head = RequestHead {
        framing,
        keep_alive: !close && (!http10 || keep_alive_token),
        expect_continue,
        te_trailers,
        head: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        http10,
        // Only a request without a body switches: what follows its head is the new
        // protocol's.
        upgrade: upgrade.is_some() && upgrade_token && !http10 && framing == Framing::Empty,
    };
    if let Decision::Forward { .. } = decision {
        // The head to forward: the client's headers less the hop-by-hop ones and those
        // the load balancer sets itself.
        for part in [method, " ", path_query, " HTTP/1.1\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
        let mut has_trace = false;
        for h in headers {
            let n = h.name;
            if hop_by_hop(headers, n, connection_named)
                || n.eq_ignore_ascii_case("expect")
                || n.eq_ignore_ascii_case("x-forwarded-for")
                || n.eq_ignore_ascii_case("x-forwarded-proto")
                || n.eq_ignore_ascii_case("x-forwarded-port")
            {
                continue;
            }
            has_trace |= n.eq_ignore_ascii_case("x-amzn-trace-id");
            write_header(out, h);
        }
        if host.is_none() {
            let _ = write!(out, "Host: {host_full}\r\n");
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if let Some(u) = upgrade.filter(|_| head.upgrade) {
            out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
            out.extend_from_slice(u);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"X-Forwarded-For: ");
        for v in headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        {
            out.extend_from_slice(v.value);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(peer_ip.as_bytes());
        let _ = write!(
            out,
            "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: {}\r\n",
            view.port()
        );
        if !has_trace {
            out.extend_from_slice(b"X-Amzn-Trace-Id: ");
            write_trace_id(&mut Utf8(out));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
    Ok((head, decision))
}

/// The comma-separated elements of a header value, trimmed.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// Whether a Transfer-Encoding's last coding is chunked.
fn ends_chunked(v: &[u8]) -> bool {
    tokens(v)
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"))
}

fn content_length(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// Whether header `name` is hop-by-hop (RFC 9110 section 7.6.1): one of `HOP_BY_HOP`, or
/// named by a Connection header (`named`: some Connection header names one).
fn hop_by_hop(headers: &[httparse::Header], name: &str, named: bool) -> bool {
    HOP_BY_HOP.iter().any(|x| name.eq_ignore_ascii_case(x))
        || (named
            && headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("connection"))
                .flat_map(|h| tokens(h.value))
                .any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

fn write_header(out: &mut Vec<u8>, h: &httparse::Header) {
    out.extend_from_slice(h.name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(h.value);
    out.extend_from_slice(b"\r\n");
}

/// Text formatted straight into a byte buffer.
struct Utf8<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// What the head of a response says.
struct ResponseHead {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

enum HeadError {
    Timeout,
    /// The target closed the connection before a byte of the response.
    Closed,
    Broken,
}

/// Read a response head from a target: its length in `up.buf`, and what `on_head` makes
/// of it (None: a head a proxy cannot pass on).
async fn read_response_head<T>(
    up: &mut Upstream,
    idle: Duration,
    mut on_head: impl FnMut(&httparse::Response) -> Option<T>,
) -> Result<(usize, T), HeadError> {
    loop {
        if !up.buf.is_empty() {
            let mut hs = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut r = httparse::Response::new(&mut []);
            match httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut r, &up.buf, &mut hs)
            {
                Ok(httparse::Status::Complete(n)) => {
                    return on_head(&r).map(|t| (n, t)).ok_or(HeadError::Broken)
                }
                Ok(httparse::Status::Partial) if up.buf.len() < MAX_HEAD => {}
                _ => return Err(HeadError::Broken),
            }
        }
        up.buf.reserve(HEAD_CHUNK);
        match timeout(idle, up.stream.read_buf(&mut up.buf)).await {
            Err(_) => return Err(HeadError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) if up.buf.is_empty() => return Err(HeadError::Closed),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Broken),
            Ok(Ok(_)) => {}
        }
    }
}

/// How a response is passed on to the client.
struct Relay {
    framing: Framing,
    /// A chunked body to an HTTP/1.0 client: only its data goes.
    decode: bool,
    client_keep: bool,
    /// The target connection can serve another request after this response.
    target_keep: bool,
    /// 101 Switching Protocols to a request that asked for it.
    upgraded: bool,
}

/// The Connection header of a response to the client.
#[derive(Clone, Copy, PartialEq)]
enum Connection {
    /// None: HTTP/1.1 keeps the connection.
    Default,
    KeepAlive,
    Close,
    /// The response switches protocols: Connection and Upgrade go to the client.
    Upgrade,
}

fn response_head(r: &httparse::Response) -> Option<ResponseHead> {
    let status = r.code?;
    let http10 = r.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    let mut close = http10;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = content_length(h.value)?;
            if length.is_some_and(|l| l != v) {
                return None;
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = ends_chunked(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    close = false;
                }
            }
        }
    }
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        }
    } else if status / 100 == 1 {
        Framing::Empty
    } else {
        Framing::Close
    };
    Some(ResponseHead {
        status,
        framing,
        keep_alive: !close,
    })
}

/// The client's copy of a response head (`r`, as the target sent it): hop-by-hop
/// headers dropped, framing and connection headers for this client, stickiness cookies.
fn write_response_head(
    out: &mut Vec<u8>,
    r: &httparse::Response,
    framing: Framing,
    decode: bool,
    conn: Connection,
    cookies: &[(&'static str, String, u64)],
) {
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        r.code.unwrap_or(502),
        r.reason.unwrap_or("")
    );
    let connection_named = r
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| tokens(h.value))
        .any(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !t.eq_ignore_ascii_case(b"keep-alive")
        });
    for h in r.headers.iter() {
        let n = h.name;
        let switching = conn == Connection::Upgrade && n.eq_ignore_ascii_case("upgrade");
        if (hop_by_hop(r.headers, n, connection_named) && !switching)
            || (framing == Framing::Chunked && n.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        write_header(out, h);
    }
    if framing == Framing::Chunked && !decode {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    for (name, value, secs) in cookies {
        for c in cookie_headers(name, value, *secs) {
            let _ = write!(out, "Set-Cookie: {c}\r\n");
        }
    }
    out.extend_from_slice(match conn {
        Connection::Default => b"",
        Connection::KeepAlive => b"Connection: keep-alive\r\n",
        Connection::Close => b"Connection: close\r\n",
        Connection::Upgrade => b"Connection: upgrade\r\n",
    });
    out.extend_from_slice(b"\r\n");
}

/// A response the load balancer makes itself.
fn write_canned(out: &mut Vec<u8>, c: &Canned, keep: bool, head: bool) {
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: awselb/2.0\r\nDate: {}\r\nContent-Length: {}\r\n",
        c.status.as_u16(),
        c.status.canonical_reason().unwrap_or(""),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        c.body.len()
    );
    if let Some(ct) = &c.content_type {
        let _ = write!(out, "Content-Type: {ct}\r\n");
    }
    if let Some(loc) = &c.location {
        let _ = write!(out, "Location: {loc}\r\n");
    }
    if !keep {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(&c.body);
    }
}

/// Where a body being copied is.
enum Body {
    Length(u64),
    Chunked(Chunks),
    /// Until the connection ends.
    Close,
    Done,
}

/// A body that could not be copied: reading it (`Source`: the sender went away or broke
/// the framing) or writing it (`Sink`).
enum Copy {
    Source,
    Sink,
}

impl Body {
    fn new(f: Framing) -> Body {
        match f {
            Framing::Empty | Framing::Length(0) => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunks::default()),
            Framing::Close => Body::Close,
        }
    }

    fn done(&self) -> bool {
        matches!(self, Body::Done)
    }

    /// Move the body's bytes at the front of `buf` to `out` (only its data if `decode`).
    fn take(&mut self, buf: &mut BytesMut, out: &mut Vec<u8>, decode: bool) -> io::Result<()> {
        match self {
            Body::Done => {}
            Body::Close => {
                out.extend_from_slice(buf);
                buf.clear();
            }
            Body::Length(left) => {
                let n = (*left).min(buf.len() as u64) as usize;
                out.extend_from_slice(&buf[..n]);
                buf.advance(n);
                *left -= n as u64;
                if *left == 0 {
                    *self = Body::Done;
                }
            }
            Body::Chunked(c) => {
                let (n, end) = c.scan(buf, if decode { Some(&mut *out) } else { None })?;
                if !decode {
                    out.extend_from_slice(&buf[..n]);
                }
                buf.advance(n);
                if end {
                    *self = Body::Done;
                }
            }
        }
        Ok(())
    }
}

/// Copy the rest of a body from `from` (what `buf` holds first) to `to` (None: read it
/// past; `decode`: only the chunks' data), using `out` as the staging buffer.
#[allow(clippy::too_many_arguments)]
async fn copy_body(
    from: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    body: &mut Body,
    mut to: Option<&mut (impl AsyncWrite + Unpin)>,
    out: &mut Vec<u8>,
    decode: bool,
    idle: Duration,
) -> Result<(), Copy> {
    loop {
        out.clear();
        body.take(buf, out, decode).map_err(|_| Copy::Source)?;
        if let Some(to) = to.as_deref_mut() {
            if !out.is_empty() {
                to.write_all(out).await.map_err(|_| Copy::Sink)?;
            }
        }
        if body.done() {
            return Ok(());
        }
        buf.reserve(CHUNK);
        match timeout(idle, from.read_buf(buf)).await {
            Err(_) | Ok(Err(_)) => return Err(Copy::Source),
            Ok(Ok(0)) if matches!(body, Body::Close) => {
                *body = Body::Done;
                return Ok(());
            }
            Ok(Ok(0)) => return Err(Copy::Source),
            Ok(Ok(_)) => {}
        }
    }
}

/// Where a chunked body's parser is (RFC 9112 section 7.1).
#[derive(Default, Debug, Clone, Copy, PartialEq)]
enum ChunkState {
    /// In a chunk's size (hex digits so far).
    #[default]
    Size,
    /// In a chunk extension, up to the line's end.
    Extension,
    SizeLf,
    /// In a chunk's data, this many bytes to go.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    End,
}

#[derive(Default, Debug)]
struct Chunks {
    state: ChunkState,
    size: u64,
    digits: u32,
}

impl Chunks {
    /// Parse from `input`: how many bytes belong to the body, and whether it ended.
    /// With `data`, the chunks' data is appended to it.
    fn scan(&mut self, input: &[u8], mut data: Option<&mut Vec<u8>>) -> io::Result<(usize, bool)> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body");
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::End {
            let b = input[i];
            match self.state {
                ChunkState::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        self.digits += 1;
                        if self.digits > 15 {
                            return Err(bad());
                        }
                        self.size = self.size * 16 + d as u64;
                    }
                    None if self.digits == 0 => return Err(bad()),
                    None if b == b'\r' => self.state = ChunkState::SizeLf,
                    None if b == b';' || b == b' ' || b == b'\t' => {
                        self.state = ChunkState::Extension
                    }
                    None => return Err(bad()),
                },
                ChunkState::Extension => {
                    if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(bad());
                    }
                    self.state = if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data(self.size)
                    };
                }
                ChunkState::Data(left) => {
                    let n = left.min((input.len() - i) as u64) as usize;
                    if let Some(d) = data.as_deref_mut() {
                        d.extend_from_slice(&input[i..i + n]);
                    }
                    i += n;
                    self.state = if left == n as u64 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                    continue;
                }
                ChunkState::DataCr if b == b'\r' => self.state = ChunkState::DataLf,
                ChunkState::DataLf if b == b'\n' => {
                    self.state = ChunkState::Size;
                    self.size = 0;
                    self.digits = 0;
                }
                ChunkState::DataCr | ChunkState::DataLf => return Err(bad()),
                ChunkState::TrailerStart if b == b'\r' => self.state = ChunkState::FinalLf,
                ChunkState::TrailerStart | ChunkState::TrailerLine => {
                    if b == b'\r' {
                        self.state = ChunkState::TrailerLf;
                    } else {
                        self.state = ChunkState::TrailerLine;
                    }
                }
                ChunkState::TrailerLf if b == b'\n' => self.state = ChunkState::TrailerStart,
                ChunkState::FinalLf if b == b'\n' => self.state = ChunkState::End,
                ChunkState::TrailerLf | ChunkState::FinalLf => return Err(bad()),
                ChunkState::End => unreachable!("the loop stops at the end"),
            }
            i += 1;
        }
        Ok((i, self.state == ChunkState::End))
    }
}

#[cfg(test)]
mod tests;
