//! The application load balancer: an HTTP/1.1 and HTTP/2 reverse proxy. Each listener
//! address has a `Slot` holding what it serves now (rules with their target groups
//! resolved to backends), swapped whole when the configuration changes; `decide` applies
//! them to a request. HTTP/1 clients are served by h1.rs, HTTP/2 clients by hyper here.
//! Requests go to targets over keep-alive HTTP/1.1 connections (TLS for HTTPS groups,
//! see tls.rs), or as HTTP/2 for ProtocolVersion HTTP2 and GRPC groups (`send_h2`), with
//! X-Forwarded-For, -Proto and -Port and X-Amzn-Trace-Id added, as an ALB does. No target: 503; a target
//! that refuses or breaks the connection: 502; no response within the idle timeout: 504.

use crate::rules::{Action, Condition, Headers, RequestFacts};
use crate::tls::Connector;
use crate::world::{Algorithm, Lb, Listener, World};
use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http2;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// Requests in flight to one target of one group: least outstanding requests picks by it,
/// and draining ends early when it is zero.
#[derive(Default, Debug)]
pub struct TargetStat {
    pub inflight: AtomicUsize,
}

pub struct Backend {
    pub addr: SocketAddrV4,
    /// Spoken to over TLS (an HTTPS target group).
    tls: bool,
    /// Spoken to in HTTP/2 (ProtocolVersion HTTP2 or GRPC).
    h2: bool,
    stat: Arc<TargetStat>,
}

pub struct GroupView {
    /// The group's id (its ARN's last part): the AWSALBTG cookie's value.
    id: String,
    algorithm: Algorithm,
    /// lb_cookie stickiness (AWSALB), for this many seconds.
    sticky_secs: Option<u64>,
    /// Healthy targets, or every routable one when none is healthy (an ALB fails open).
    backends: Vec<Backend>,
    next: AtomicUsize,
}

enum ActionView {
    Forward {
        groups: Vec<(Arc<GroupView>, u32)>,
        total: u32,
        next: AtomicUsize,
        /// Group stickiness (AWSALBTG), for this many seconds.
        sticky_secs: Option<u64>,
    },
    Redirect(berth_model::elbv2::rule::RedirectConfig),
    Fixed {
        status: StatusCode,
        content_type: Option<String>,
        body: Bytes,
    },
}

struct RuleView {
    conditions: Vec<Condition>,
    action: ActionView,
}

/// What one listener serves.
pub struct ListenerView {
    port: u16,
    /// The Host an HTTP/1.0 request without one is forwarded with: the DNS name.
    dns_name: String,
    idle_timeout: Duration,
    rules: Vec<RuleView>,
}

pub type Slot = Arc<RwLock<Arc<ListenerView>>>;

type ProxyBody = Either<Full<Bytes>, Counted>;

/// A request body on its way to an HTTP/2 target.
pub(crate) type UpBody = BoxBody<Bytes, hyper::Error>;

/// A request to an HTTP/2 target (`req`'s URI absolute, its authority what the client
/// asked for) on the serving thread's connection to it, opened (again) when there is
/// none or it has closed.
pub(crate) async fn send_h2(
    addr: SocketAddrV4,
    tls: bool,
    req: Request<UpBody>,
) -> Result<Response<Incoming>, String> {
    let mut kept = H2.with(|m| m.borrow().get(&(addr, tls)).cloned());
    if let Some(s) = kept.as_mut() {
        if s.is_closed() || s.ready().await.is_err() {
            kept = None;
        }
    }
    let mut sender = match kept {
        Some(s) => s,
        None => {
            let conn = crate::tls::open(addr, tls, true)
                .await
                .map_err(|e| e.to_string())?;
            let (mut s, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(conn))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            s.ready().await.map_err(|e| e.to_string())?;
            H2.with(|m| {
                let mut m = m.borrow_mut();
                // Connections the targets closed (or that broke) go with a new one.
                m.retain(|_, s| !s.is_closed());
                m.insert((addr, tls), s.clone());
            });
            s
        }
    };
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// Make `parts` a request for an HTTP/2 target: an absolute URI whose authority is the
/// Host the client asked for (HTTP/2's `:authority`), and `te: trailers` kept (gRPC
/// needs it; it is the one TE value HTTP/2 allows).
pub(crate) fn to_h2(
    parts: &mut hyper::http::request::Parts,
    addr: SocketAddrV4,
    tls: bool,
    host: &str,
    path: &str,
    te_trailers: bool,
) -> bool {
    let scheme = if tls { "https" } else { "http" };
    let uri = Uri::try_from(format!("{scheme}://{host}{path}"))
        .or_else(|_| Uri::try_from(format!("{scheme}://{addr}{path}")));
    let Ok(uri) = uri else {
        return false;
    };
    parts.uri = uri;
    parts.version = Version::HTTP_2;
    parts.headers.remove(HOST);
    if te_trailers {
        parts
            .headers
            .insert(hyper::header::TE, HeaderValue::from_static("trailers"));
    }
    true
}

/// The HTTP/2 connection preface (RFC 9113 section 3.4): a client that opens with it
/// speaks HTTP/2 with prior knowledge; anything else is HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A response the load balancer makes itself: a fixed response, a redirect or an error.
pub(crate) struct Canned {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Bytes,
}

/// What a listener does with one request.
pub(crate) enum Decision<'v> {
    Reply(Canned),
    /// Send it to `backend`; the response sets these stickiness cookies (name, value,
    /// seconds).
    Forward {
        backend: &'v Backend,
        cookies: Vec<(&'static str, String, u64)>,
    },
}

pub struct Proxy {
    stats: Mutex<HashMap<(String, SocketAddrV4), Arc<TargetStat>>>,
}

thread_local! {
    /// Each serving thread's own pool of keep-alive connections to targets (see workers.rs).
    /// HTTP/1.1 targets, over TCP (`http://` URIs) or TLS (`https://`).
    static CLIENT: Client<Connector, Incoming> = {
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(Connector)
    };
    /// Each serving thread's one HTTP/2 connection to each HTTP/2 target (by address and
    /// whether over TLS): requests share it as streams.
    static H2: RefCell<HashMap<(SocketAddrV4, bool), http2::SendRequest<UpBody>>> =
        RefCell::default();
    /// xorshift state for trace ids: no system call per request.
    static RNG: std::cell::Cell<u64> = std::cell::Cell::new(
        u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes")) | 1,
    );
}

fn next_random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x
    })
}

impl Default for Proxy {
    fn default() -> Self {
        Self::new()
    }
}

impl Proxy {
    pub fn new() -> Proxy {
        Proxy {
            stats: Mutex::new(HashMap::new()),
        }
    }

    fn stat(&self, tg: &str, addr: SocketAddrV4) -> Arc<TargetStat> {
        self.stats
            .lock()
            .expect("lock")
            .entry((tg.to_string(), addr))
            .or_default()
            .clone()
    }

    /// Requests in flight to a target of a group.
    pub fn inflight(&self, tg: &str, addr: SocketAddrV4) -> usize {
        self.stats
            .lock()
            .expect("lock")
            .get(&(tg.to_string(), addr))
            .map_or(0, |s| s.inflight.load(Ordering::Relaxed))
    }

    /// Forget counters of targets no longer in `world` (and idle).
    pub fn prune(&self, world: &World) {
        self.stats.lock().expect("lock").retain(|(tg, addr), s| {
            s.inflight.load(Ordering::Relaxed) > 0
                || world
                    .tgs
                    .get(tg)
                    .is_some_and(|g| g.targets.iter().any(|t| t.addr == Some(*addr)))
        });
    }

    /// The view of a listener of `lb` in `world`.
    pub fn view(&self, world: &World, lb: &Lb, l: &Listener) -> ListenerView {
        let group = |arn: &str| -> Arc<GroupView> {
            let id = arn.rsplit('/').next().unwrap_or("").to_string();
            let Some(tg) = world.tgs.get(arn) else {
                return Arc::new(GroupView {
                    id,
                    algorithm: Algorithm::RoundRobin,
                    sticky_secs: None,
                    backends: vec![],
                    next: AtomicUsize::new(0),
                });
            };
            let routable: Vec<_> = tg
                .targets
                .iter()
                .filter(|t| t.state != "draining")
                .filter_map(|t| t.addr.map(|a| (a, t.state == "healthy")))
                .collect();
            let any_healthy = routable.iter().any(|(_, h)| *h);
            let backends = routable
                .into_iter()
                .filter(|(_, h)| *h || !any_healthy)
                .map(|(addr, _)| Backend {
                    addr,
                    tls: tg.protocol == "HTTPS",
                    h2: tg.version.h2(),
                    stat: self.stat(arn, addr),
                })
                .collect();
            Arc::new(GroupView {
                id,
                algorithm: tg.algorithm,
                sticky_secs: tg.sticky_secs,
                backends,
                next: AtomicUsize::new(0),
            })
        };
        let rules = l
            .rules
            .iter()
            .map(|r| RuleView {
                conditions: r.conditions.clone(),
                action: match &r.action {
                    Action::Forward {
                        groups: gs,
                        sticky_secs,
                    } => ActionView::Forward {
                        groups: gs.iter().map(|(a, w)| (group(a), *w)).collect(),
                        total: gs.iter().map(|(_, w)| *w).sum(),
                        next: AtomicUsize::new(0),
                        sticky_secs: *sticky_secs,
                    },
                    Action::Redirect(c) => ActionView::Redirect(c.clone()),
                    Action::FixedResponse {
                        status,
                        content_type,
                        body,
                    } => ActionView::Fixed {
                        status: StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
                        content_type: content_type.clone(),
                        body: Bytes::from(body.clone()),
                    },
                },
            })
            .collect();
        ListenerView {
            port: l.port,
            dns_name: lb.dns_name.clone(),
            idle_timeout: Duration::from_secs(lb.idle_timeout_secs.max(1)),
            rules,
        }
    }

    /// Accept connections on `listener` until the task is aborted.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener, slot: Slot) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "load balancer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(self.clone().connection(stream, peer, slot.clone()));
        }
    }

    /// One client connection: HTTP/2 (it opens with the preface) on hyper, HTTP/1 on
    /// Berth's own path (h1.rs).
    async fn connection(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr, slot: Slot) {
        use tokio::io::AsyncReadExt;
        let idle = slot.read().expect("lock").idle_timeout;
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            let n = buf.len().min(H2_PREFACE.len());
            if buf[..n] != H2_PREFACE[..n] {
                return crate::h1::serve(stream, buf, peer, &slot).await;
            }
            if n == H2_PREFACE.len() {
                break;
            }
            match tokio::time::timeout(idle, stream.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
        let me = self.clone();
        let svc = hyper::service::service_fn(move |req| {
            let (me, slot) = (me.clone(), slot.clone());
            async move {
                let view = slot.read().expect("lock").clone();
                Ok::<_, std::convert::Infallible>(me.handle_h2(req, peer, &view).await)
            }
        });
        let io = Prefixed {
            pre: buf.freeze(),
            inner: stream,
        };
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), svc)
            .await;
    }

    /// An HTTP/2 request (a stream of a connection).
    async fn handle_h2(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        view: &ListenerView,
    ) -> Response<ProxyBody> {
        let host_full = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .filter(|h| !h.is_empty())
            .unwrap_or(&view.dns_name)
            .to_string();
        let facts = RequestFacts {
            method: req.method().as_str(),
            path: req.uri().path(),
            host: strip_port(&host_full),
            query: req.uri().query(),
            headers: Headers::Map(req.headers()),
            source: peer.ip(),
        };
        match view.decide(&facts) {
            Decision::Reply(c) => c.into_response(),
            Decision::Forward { backend, cookies } => {
                let mut resp = self.forward_h2(req, peer, view, backend, host_full).await;
                for (name, value, secs) in cookies {
                    for c in cookie_headers(name, &value, secs) {
                        if let Ok(v) = HeaderValue::from_str(&c) {
                            resp.headers_mut().append(hyper::header::SET_COOKIE, v);
                        }
                    }
                }
                resp
            }
        }
    }

    async fn forward_h2(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        view: &ListenerView,
        backend: &Backend,
        host: String,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let te_trailers = parts
            .headers
            .get_all(hyper::header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
        let scheme = if backend.tls { "https" } else { "http" };
        let Ok(uri) = Uri::try_from(format!("{scheme}://{}{}", backend.addr, path)) else {
            return Canned::error(StatusCode::BAD_REQUEST).into_response();
        };
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let h = &mut parts.headers;
        strip_hop_by_hop(h);
        if !h.contains_key(HOST) {
            if let Ok(v) = HeaderValue::from_str(&host) {
                h.insert(HOST, v);
            }
        }
        let client_ip = peer.ip().to_string();
        let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {client_ip}"),
            None => client_ip,
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            h.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
        h.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        );
        h.insert(
            HeaderName::from_static("x-forwarded-port"),
            HeaderValue::from(view.port),
        );
        if !h.contains_key("x-amzn-trace-id") {
            let mut id = String::new();
            write_trace_id(&mut id);
            if let Ok(v) = HeaderValue::from_str(&id) {
                h.insert(HeaderName::from_static("x-amzn-trace-id"), v);
            }
        }
        let guard = Inflight::new(backend.stat.clone());
        let (addr, tls, h2) = (backend.addr, backend.tls, backend.h2);
        if h2 && !to_h2(&mut parts, addr, tls, &host, &path, te_trailers) {
            return Canned::error(StatusCode::BAD_REQUEST).into_response();
        }
        let sent = async move {
            if h2 {
                send_h2(addr, tls, Request::from_parts(parts, body.boxed())).await
            } else {
                let sent = CLIENT.with(|c| c.request(Request::from_parts(parts, body)));
                sent.await.map_err(|e| e.to_string())
            }
        };
        match tokio::time::timeout(view.idle_timeout, sent).await {
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(
                    parts,
                    Either::Right(Counted {
                        inner: body,
                        _guard: guard,
                    }),
                )
            }
            Ok(Err(e)) => {
                tracing::debug!(target = %backend.addr, error = %e, "target failed");
                Canned::error(StatusCode::BAD_GATEWAY).into_response()
            }
            Err(_) => Canned::error(StatusCode::GATEWAY_TIMEOUT).into_response(),
        }
    }
}

impl ListenerView {
    /// How long a connection may sit without data before it is closed, and how long a
    /// target may take to answer (`idle_timeout.timeout_seconds`).
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The Host an HTTP/1.0 request without one is forwarded with: the DNS name.
    pub(crate) fn dns_name(&self) -> &str {
        &self.dns_name
    }

    /// What the rules do with a request: the first rule whose conditions all match
    /// decides; its forward action picks a group by weight and a target by the group's
    /// algorithm, unless the client's stickiness cookies name them.
    pub(crate) fn decide(&self, facts: &RequestFacts) -> Decision<'_> {
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.conditions.iter().all(|c| c.matches(facts)))
        else {
            return Decision::Reply(Canned::error(StatusCode::SERVICE_UNAVAILABLE));
        };
        match &rule.action {
            ActionView::Fixed {
                status,
                content_type,
                body,
            } => Decision::Reply(Canned {
                status: *status,
                content_type: content_type.clone(),
                location: None,
                body: body.clone(),
            }),
            ActionView::Redirect(cfg) => Decision::Reply(redirect(cfg, facts, self.port)),
            ActionView::Forward {
                groups,
                total,
                next,
                sticky_secs,
            } => {
                let group = sticky_secs
                    .and_then(|_| cookie(facts.headers, "AWSALBTG"))
                    .and_then(|v| groups.iter().find(|(g, _)| g.id == v))
                    .map(|(g, _)| &**g)
                    .or_else(|| pick_group(groups, *total, next));
                let Some(group) = group else {
                    return Decision::Reply(Canned::error(StatusCode::SERVICE_UNAVAILABLE));
                };
                let backend = group
                    .sticky_secs
                    .and_then(|_| cookie(facts.headers, "AWSALB"))
                    .and_then(|v| group.backends.iter().find(|b| backend_cookie(b.addr) == v))
                    .or_else(|| pick_backend(group));
                let Some(backend) = backend else {
                    return Decision::Reply(Canned::error(StatusCode::SERVICE_UNAVAILABLE));
                };
                let mut cookies = vec![];
                if let Some(secs) = sticky_secs {
                    cookies.push(("AWSALBTG", group.id.clone(), *secs));
                }
                if let Some(secs) = group.sticky_secs {
                    cookies.push(("AWSALB", backend_cookie(backend.addr), secs));
                }
                Decision::Forward { backend, cookies }
            }
        }
    }
}

impl Backend {
    pub(crate) fn addr(&self) -> SocketAddrV4 {
        self.addr
    }

    pub(crate) fn tls(&self) -> bool {
        self.tls
    }

    pub(crate) fn h2(&self) -> bool {
        self.h2
    }

    /// Counts a request to this backend in flight while the guard lives.
    pub(crate) fn inflight(&self) -> Inflight {
        Inflight::new(self.stat.clone())
    }
}

/// A stream whose first bytes were already read (to look for the HTTP/2 preface).
struct Prefixed {
    pre: Bytes,
    inner: TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts a request in flight until its response body has been sent.
pub(crate) struct Inflight(Arc<TargetStat>);

impl Inflight {
    fn new(s: Arc<TargetStat>) -> Inflight {
        s.inflight.fetch_add(1, Ordering::Relaxed);
        Inflight(s)
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A target's response body, holding its request's in-flight count.
pub struct Counted {
    inner: Incoming,
    _guard: Inflight,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn pick_group<'a>(
    groups: &'a [(Arc<GroupView>, u32)],
    total: u32,
    next: &AtomicUsize,
) -> Option<&'a GroupView> {
    if groups.len() == 1 {
        return Some(&groups[0].0);
    }
    if total == 0 {
        return None;
    }
    let mut n = (next.fetch_add(1, Ordering::Relaxed) % total as usize) as u32;
    for (g, w) in groups {
        if n < *w {
            return Some(g);
        }
        n -= w;
    }
    None
}

fn pick_backend(g: &GroupView) -> Option<&Backend> {
    let n = g.backends.len();
    if n == 0 {
        return None;
    }
    let start = g.next.fetch_add(1, Ordering::Relaxed) % n;
    match g.algorithm {
        Algorithm::RoundRobin => Some(&g.backends[start]),
        // The fewest requests in flight; ties go round the list.
        Algorithm::LeastOutstanding => (0..n)
            .map(|k| &g.backends[(start + k) % n])
            .min_by_key(|b| b.stat.inflight.load(Ordering::Relaxed)),
    }
}

/// The value of cookie `name` in a request's Cookie headers.
fn cookie<'h>(h: Headers<'h>, name: &str) -> Option<&'h str> {
    h.values("cookie")
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// A target as its stickiness cookie names it: address and port in hex.
fn backend_cookie(addr: SocketAddrV4) -> String {
    format!("{:08X}{:04X}", u32::from(*addr.ip()), addr.port())
}

/// Set-Cookie values for `NAME` and `NAMECORS` (SameSite=None, for cross-origin
/// requests), as an ALB sets them.
pub(crate) fn cookie_headers(name: &str, value: &str, secs: u64) -> [String; 2] {
    let expires = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(secs));
    [
        format!("{name}={value}; Expires={expires}; Path=/"),
        format!("{name}CORS={value}; Expires={expires}; Path=/; SameSite=None"),
    ]
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection and are
/// not forwarded. Headers the Connection header names are hop-by-hop too.
pub(crate) const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<String> = h
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for n in named {
        h.remove(n.as_str());
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

/// `Root=1-{epoch seconds, hex}-{24 hex digits}`, written to `out`.
pub(crate) fn write_trace_id(out: &mut impl std::fmt::Write) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = write!(
        out,
        "Root=1-{secs:08x}-{:08x}{:016x}",
        next_random() as u32,
        next_random()
    );
}

impl Canned {
    /// An ALB's own error page.
    pub(crate) fn error(status: StatusCode) -> Canned {
        let text = format!(
            "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>\r\n</body>\r\n</html>\r\n",
            status
        );
        Canned {
            status,
            content_type: Some("text/html".into()),
            location: None,
            body: Bytes::from(text),
        }
    }

    fn into_response(self) -> Response<ProxyBody> {
        let mut r = Response::new(Either::Left(Full::new(self.body)));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert(
            hyper::header::SERVER,
            HeaderValue::from_static("awselb/2.0"),
        );
        if let Some(ct) = self.content_type.and_then(|c| c.parse().ok()) {
            h.insert(hyper::header::CONTENT_TYPE, ct);
        }
        if let Some(loc) = self.location.and_then(|c| c.parse().ok()) {
            h.insert(hyper::header::LOCATION, loc);
        }
        r
    }
}

/// A redirect action: each part of RedirectConfig with #{protocol}, #{host}, #{port},
/// #{path} and #{query} replaced by the request's.
fn redirect(
    cfg: &berth_model::elbv2::rule::RedirectConfig,
    facts: &RequestFacts,
    port: u16,
) -> Canned {
    let query = facts.query.unwrap_or("");
    let port_s = port.to_string();
    let fill = |field: &Option<String>, default: &str| -> String {
        field
            .as_deref()
            .unwrap_or(default)
            .replace("#{protocol}", "http")
            .replace("#{host}", facts.host)
            .replace("#{port}", &port_s)
            .replace("#{path}", facts.path.trim_start_matches('/'))
            .replace("#{query}", query)
    };
    let proto = fill(&cfg.protocol, "#{protocol}").to_ascii_lowercase();
    let to_host = fill(&cfg.host, "#{host}");
    let to_port = fill(&cfg.port, "#{port}");
    let mut to_path = fill(&cfg.path, "/#{path}");
    if !to_path.starts_with('/') {
        to_path.insert(0, '/');
    }
    let to_query = fill(&cfg.query, "#{query}");
    let default_port =
        (proto == "http" && to_port == "80") || (proto == "https" && to_port == "443");
    let mut loc = format!("{proto}://{to_host}");
    if !default_port {
        loc.push(':');
        loc.push_str(&to_port);
    }
    loc.push_str(&to_path);
    if !to_query.is_empty() {
        loc.push('?');
        loc.push_str(&to_query);
    }
    let status = if cfg.status_code.as_deref() == Some("HTTP_301") {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::FOUND
    };
    Canned {
        status,
        content_type: None,
        location: Some(loc),
        body: Bytes::new(),
    }
}

/// A listener in front of given targets, for tests with real sockets.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::world::*;

    /// A target that reads request heads and answers `reply` to each, then closes the
    /// connection if `close`; it counts the connections it accepted.
    pub async fn scripted_target(
        reply: &'static [u8],
        close: bool,
    ) -> (SocketAddrV4, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            unreachable!()
        };
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if s.write_all(reply).await.is_err() || close {
                                return;
                            }
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    /// Serve a listener on 127.0.0.1 (an ephemeral port) whose one rule forwards round
    /// robin to `targets`, all healthy; its idle timeout is 60 s.
    pub async fn front(targets: &[SocketAddrV4]) -> SocketAddr {
        let target = |addr: &SocketAddrV4| Target {
            id: addr.ip().to_string(),
            port: addr.port(),
            state: "healthy".into(),
            addr: Some(*addr),
            drain_deadline: None,
        };
        front_of(Tg {
            arn: "tg".into(),
            targets_key: String::new(),
            protocol: "HTTP".into(),
            version: ProtocolVersion::Http1,
            in_use: true,
            algorithm: Algorithm::RoundRobin,
            sticky_secs: None,
            health: HealthCheck {
                version: ProtocolVersion::Http1,
                protocol: "HTTP".into(),
                port: None,
                path: "/".into(),
                interval_secs: 30,
                timeout_secs: 5,
                healthy_threshold: 2,
                unhealthy_threshold: 2,
                codes: vec![(200, 200)],
            },
            targets: targets.iter().map(target).collect(),
        })
        .await
    }

    /// Serve a listener on 127.0.0.1 (an ephemeral port) whose one rule forwards
    /// everything to `tg`; its idle timeout is 60 s.
    pub async fn front_of(tg: Tg) -> SocketAddr {
        let mut w = World::default();
        w.tgs.insert("tg".into(), tg);
        let listener = Listener {
            arn: "l".into(),
            port: 80,
            protocol: "HTTP".into(),
            rules: vec![Rule {
                conditions: vec![],
                action: Action::Forward {
                    groups: vec![("tg".into(), 1)],
                    sticky_secs: None,
                },
            }],
        };
        let lb = Lb {
            arn: "lb".into(),
            dns_name: "web.elb.localhost".into(),
            lb_type: LbType::Application,
            ips: vec![],
            vpc_cidr: None,
            idle_timeout_secs: 60,
            internal: false,
            listeners: vec![listener.clone()],
        };
        let proxy = Arc::new(Proxy::new());
        let slot: Slot = Arc::new(RwLock::new(Arc::new(proxy.view(&w, &lb, &listener))));
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        tokio::spawn(proxy.serve(front, slot));
        addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_connection_keeps_one_connection_per_target() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (a, a_conns) = testing::scripted_target(ok, false).await;
        let (b, b_conns) = testing::scripted_target(ok, false).await;
        let front_addr = testing::front(&[a, b]).await;
        // Six requests on one keep-alive connection, round robin over two targets.
        let mut c = tokio::net::TcpStream::connect(front_addr).await.unwrap();
        for _ in 0..6 {
            c.write_all(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
                .await
                .unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 1024];
            while !got.ends_with(b"ok") {
                let n = c.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the proxy closed the connection");
                got.extend_from_slice(&chunk[..n]);
            }
            assert!(
                got.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&got)
            );
        }
        assert_eq!(
            (
                a_conns.load(Ordering::SeqCst),
                b_conns.load(Ordering::SeqCst)
            ),
            (1, 1),
            "one connection to each target, reused"
        );
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; AWSALB=0A0000050050".parse().unwrap());
        h.append("cookie", "AWSALBTG=abc".parse().unwrap());
        assert_eq!(cookie(Headers::Map(&h), "AWSALB"), Some("0A0000050050"));
        assert_eq!(cookie(Headers::Map(&h), "AWSALBTG"), Some("abc"));
        assert_eq!(cookie(Headers::Map(&h), "AWSALBCORS"), None);
        assert_eq!(
            backend_cookie(SocketAddrV4::new([10, 0, 0, 5].into(), 80)),
            "0A0000050050"
        );
    }

    #[test]
    fn ports_come_off_hosts() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }

    #[test]
    fn weights_share_requests() {
        let g = |n| {
            Arc::new(GroupView {
                id: String::new(),
                algorithm: Algorithm::RoundRobin,
                sticky_secs: None,
                backends: (0..n)
                    .map(|i| Backend {
                        addr: SocketAddrV4::new([10, 0, 0, i as u8].into(), 80),
                        tls: false,
                        h2: false,
                        stat: Arc::default(),
                    })
                    .collect(),
                next: AtomicUsize::new(0),
            })
        };
        let groups = vec![(g(1), 3), (g(2), 1)];
        let next = AtomicUsize::new(0);
        let picks: Vec<usize> = (0..8)
            .map(|_| pick_group(&groups, 4, &next).unwrap().backends.len())
            .collect();
        assert_eq!(picks, [1, 1, 1, 2, 1, 1, 1, 2]);
        // Least outstanding: the idle one wins.
        let lor = GroupView {
            algorithm: Algorithm::LeastOutstanding,
            ..Arc::try_unwrap(g(3)).ok().unwrap()
        };
        lor.backends[0].stat.inflight.store(2, Ordering::Relaxed);
        lor.backends[1].stat.inflight.store(0, Ordering::Relaxed);
        lor.backends[2].stat.inflight.store(1, Ordering::Relaxed);
        for _ in 0..3 {
            assert_eq!(pick_backend(&lor).unwrap().addr.ip().octets()[3], 1);
        }
    }
}
