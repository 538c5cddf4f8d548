//! The edge: one HTTP port for every API. It works out which service a request is for
//! (SigV4 scope, then X-Amz-Target, then path, then Host), who is calling (account,
//! region), checks the signature when auth is enforced, and hands the body to the wire
//! layer. It knows no service by name, but for the two that stream their bodies and take
//! the request whole: the registry (`/v2/`) and S3.

use crate::auth::{Auth, Dialect, SignableBody};
use berth_wire::service::{
    handle_cbor, handle_json, handle_query, handle_rest_json, json_error, protocol_error,
};
use berth_wire::sigv4::{parse_authorization, parse_credential, AuthHeader, CredentialScope};
use berth_wire::{ApiError, Protocol, RequestContext, Service, WireResponse};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Request, Response};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

type Body = BoxBody<Bytes, std::io::Error>;

/// Largest request body accepted (ECS's own limit for a request is lower than this).
pub const MAX_BODY: usize = 10 * 1024 * 1024;
const DEFAULT_REGION: &str = "us-east-1";

pub struct Services {
    all: Vec<Arc<dyn Service>>,
    /// rest-json services' operation routers, built on first use.
    routers: Vec<std::sync::OnceLock<berth_wire::rest::Router>>,
    by_signing_name: HashMap<String, usize>,
    by_target_prefix: HashMap<String, usize>,
}

impl Services {
    pub fn new(all: Vec<Arc<dyn Service>>) -> Self {
        let mut by_signing_name = HashMap::new();
        let mut by_target_prefix = HashMap::new();
        for (i, s) in all.iter().enumerate() {
            let m = s.metadata();
            by_signing_name.insert(
                m.signing_name
                    .clone()
                    .unwrap_or_else(|| m.endpoint_prefix.clone()),
                i,
            );
            by_signing_name.insert(m.endpoint_prefix.clone(), i);
            if let Some(p) = &m.target_prefix {
                by_target_prefix.insert(p.clone(), i);
            }
        }
        Services {
            routers: all.iter().map(|_| Default::default()).collect(),
            all,
            by_signing_name,
            by_target_prefix,
        }
    }
    fn by_name(&self, name: &str) -> Option<&Arc<dyn Service>> {
        self.by_signing_name.get(name).map(|&i| &self.all[i])
    }
    fn by_target(&self, prefix: &str) -> Option<&Arc<dyn Service>> {
        self.by_target_prefix.get(prefix).map(|&i| &self.all[i])
    }
    fn router(&self, service: &Arc<dyn Service>) -> &berth_wire::rest::Router {
        let i = self
            .all
            .iter()
            .position(|s| std::ptr::addr_eq(Arc::as_ptr(s), Arc::as_ptr(service)))
            .expect("the service is registered");
        self.routers[i].get_or_init(|| berth_wire::rest::Router::new(service.model()))
    }
}

pub struct Edge {
    pub services: Services,
    pub registry: Arc<berth_registry::Registry>,
    pub s3: Arc<berth_s3::S3>,
    pub auth: Auth,
    pub default_account: String,
    /// With `--test-clock`: the clock `/_berth/clock` reads and advances.
    pub test_clock: Option<berth_wire::Clock>,
    /// Connections open at once, over every listener (`--max-connections`): at the limit
    /// the edge stops accepting until one closes, and new clients wait in the backlog.
    pub connections: Arc<tokio::sync::Semaphore>,
    /// How long a connection may take to send a request's headers, the wait for the next
    /// request on a kept-alive connection included (`--idle-timeout`); then it is closed.
    pub header_timeout: std::time::Duration,
}

pub async fn serve(
    edge: Arc<Edge>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut warned_full = false;
    let header_timeout = edge.header_timeout;
    loop {
        // A permit first: at the limit, stop accepting (clients queue in the backlog).
        if edge.connections.available_permits() == 0 && !warned_full {
            warned_full = true;
            tracing::warn!(
                "the edge is at --max-connections; new connections wait until one closes"
            );
        }
        let permit = tokio::select! {
            p = edge.connections.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let edge = edge.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let edge = edge.clone();
                    async move { Ok::<_, std::convert::Infallible>(edge.handle(req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}

fn respond(
    status: u16,
    content_type: &'static str,
    request_id: &str,
    body: Vec<u8>,
    error_code: Option<&str>,
) -> Response<Body> {
    use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
    // Built directly (static names, reserved map): a reply's headers cost two allocations.
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.reserve(4);
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        h.insert(HeaderName::from_static("x-amz-request-id"), id.clone());
        h.insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    if let Some(code) = error_code.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert(HeaderName::from_static("x-amzn-errortype"), code);
    }
    r
}

fn wire(w: WireResponse, request_id: &str) -> Response<Body> {
    let mut r = respond(
        w.status,
        w.content_type,
        request_id,
        w.body,
        w.error_code.as_deref(),
    );
    for (k, v) in w.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// Operations that only read state, by AWS's naming. (EC2's describes may create an
/// account's default VPC once; that single write is allowed to run inline.)
fn reads_only(op: &str) -> bool {
    ["Describe", "List", "Get", "BatchGet", "BatchCheck"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// A plain JSON error for requests we could not attribute to any service.
fn edge_error(e: &ApiError, request_id: &str) -> Response<Body> {
    let body = serde_json::to_vec(&serde_json::json!({"__type": e.code, "message": e.message}))
        .expect("json");
    respond(
        e.status,
        "application/json",
        request_id,
        body,
        Some(&e.code),
    )
}

/// Who signed a request, for which region and service (from the Authorization header or
/// a presigned URL's query).
struct Caller {
    auth_header: Option<AuthHeader>,
    query_params: HashMap<String, String>,
    /// The scope of a presigned URL (a signed header carries its own).
    presigned: Option<CredentialScope>,
}

impl Caller {
    fn of(parts: &Parts) -> Caller {
        let auth_header = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_authorization);
        let query_params: HashMap<String, String> = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let presigned = match auth_header {
            Some(_) => None,
            None => query_params
                .get("X-Amz-Credential")
                .and_then(|c| parse_credential(c)),
        };
        Caller {
            auth_header,
            query_params,
            presigned,
        }
    }

    fn scope(&self) -> Option<&CredentialScope> {
        match &self.auth_header {
            Some(h) => Some(&h.scope),
            None => self.presigned.as_ref(),
        }
    }
}

impl Edge {
    /// The account (a 12-digit access key id names one) and region of a request.
    fn context(&self, scope: Option<&CredentialScope>, request_id: &str) -> RequestContext {
        let region = scope
            .map(|s| s.region().to_string())
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let account = scope
            .map(|s| s.access_key())
            .filter(|k| k.len() == 12 && k.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string)
            .unwrap_or_else(|| self.default_account.clone());
        RequestContext {
            account,
            region,
            request_id: request_id.to_string(),
        }
    }

    /// `/_berth/clock` with `--test-clock`: GET reads Berth's clock, POST
    /// `{"advance":"15m"}` moves it forward (ms, s, m, h or d).
    async fn clock_request(
        &self,
        parts: &Parts,
        body: Incoming,
        request_id: &str,
    ) -> Response<Body> {
        let Some(clock) = &self.test_clock else {
            let e = ApiError::new(
                404,
                "NotFound",
                "The test clock is off: start berth with --test-clock to read and move its time",
            );
            return edge_error(&e, request_id);
        };
        if parts.method == hyper::Method::POST {
            let body = match Limited::new(body, 4096).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    let e =
                        ApiError::client("InvalidRequest", "The body must be at most 4096 bytes");
                    return edge_error(&e, request_id);
                }
            };
            let advance = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("advance")?.as_str().map(str::to_string));
            match advance.as_deref().map(parse_duration_ms) {
                Some(Some(ms)) if ms > 0 => clock.advance_ms(ms),
                _ => {
                    let e = ApiError::client(
                        "InvalidRequest",
                        "Expected {\"advance\": DURATION}, a positive duration such as \"90s\", \"15m\", \"2h\" or \"7d\" (time only moves forward)",
                    );
                    return edge_error(&e, request_id);
                }
            }
        } else if parts.method != hyper::Method::GET {
            let e = ApiError::new(405, "MethodNotAllowed", "Use GET or POST");
            return edge_error(&e, request_id);
        }
        let now = clock.now();
        let body = serde_json::json!({
            "now": now,
            "iso8601": berth_wire::time::format_iso8601(now),
            "offsetMs": clock.offset_ms(),
        });
        respond(
            200,
            "application/json",
            request_id,
            body.to_string().into_bytes(),
            None,
        )
    }

    /// An S3 request: its signature covers the payload hash the client declared
    /// (`x-amz-content-sha256`), which S3 checks against the body as it arrives.
    async fn s3(
        &self,
        parts: Parts,
        body: Incoming,
        caller: Caller,
        request_id: String,
    ) -> Response<Body> {
        let ctx = self.context(caller.scope(), &request_id);
        let head = parts.method == hyper::Method::HEAD;
        if self.auth.enforce {
            let payload = parts
                .headers
                .get("x-amz-content-sha256")
                .and_then(|v| v.to_str().ok());
            let presigned = caller.auth_header.is_none();
            let checked = match payload {
                None if !presigned => Err(berth_s3::S3Error::new(
                    400,
                    "InvalidRequest",
                    "Missing required header for this request: x-amz-content-sha256",
                )),
                _ => self
                    .auth
                    .check(
                        &parts,
                        SignableBody::Precomputed(
                            payload.unwrap_or("UNSIGNED-PAYLOAD").to_string(),
                        ),
                        caller.auth_header.as_ref(),
                        &caller.query_params,
                        Dialect::S3,
                    )
                    .map_err(|e| s3_auth_error(&e)),
            };
            if let Err(e) = checked {
                return berth_s3::http::error_response(&e, &request_id, head);
            }
        }
        berth_s3::http::handle(self.s3.clone(), parts, body, ctx).await
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        // The registry streams its bodies (layers can be large): it takes the request whole.
        if req.uri().path() == "/v2" || req.uri().path().starts_with("/v2/") {
            return berth_registry::http::handle(self.registry.clone(), req).await;
        }
        let request_id = berth_wire::request_id();
        let (parts, body) = req.into_parts();
        if parts.uri.path() == "/_berth/health" {
            let body = serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")});
            return respond(
                200,
                "application/json",
                &request_id,
                body.to_string().into_bytes(),
                None,
            );
        }
        if parts.uri.path() == "/_berth/clock" {
            return self.clock_request(&parts, body, &request_id).await;
        }
        let caller = Caller::of(&parts);
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let target = header("x-amz-target");
        // S3 streams object bodies and has its own protocol: it takes the request whole.
        let s3_host = || header("host").and_then(|h| h.split(['.', ':']).next()) == Some("s3");
        if caller.scope().map(|s| s.service()) == Some("s3")
            || (caller.scope().is_none() && target.is_none() && s3_host())
        {
            return self.s3(parts, body, caller, request_id).await;
        }
        let too_large = ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request body is larger than {MAX_BODY} bytes"),
        );
        if parts
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > MAX_BODY)
        {
            return edge_error(&too_large, &request_id);
        }
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return edge_error(&too_large, &request_id),
        };
        let scope = caller.scope();
        let service = scope
            .and_then(|s| self.services.by_name(s.service()))
            .or_else(|| {
                target
                    .and_then(|t| t.split_once('.'))
                    .and_then(|(p, _)| self.services.by_target(p))
            })
            .or_else(|| {
                cbor_operation(parts.uri.path()).and_then(|(s, _)| self.services.by_target(s))
            })
            .or_else(|| {
                let host = header("host")?;
                let first = host.split(['.', ':']).next()?;
                self.services.by_name(first)
            });
        let Some(service) = service else {
            let what = scope
                .map(|s| s.service().to_string())
                .or(target.map(str::to_string));
            let e = ApiError::new(
                501,
                "NotImplemented",
                match what {
                    Some(w) => format!("Berth does not serve the service for {w:?} yet"),
                    None => "Berth could not tell which AWS service this request is for (no SigV4 credential scope, X-Amz-Target or known Host)".into(),
                },
            );
            // In the client's protocol, so that it can read the error: from the request's
            // form, else from the service named in the signature.
            let form = header("content-type")
                .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
            let protocol = if header("smithy-protocol") == Some("rpc-v2-cbor")
                || cbor_operation(parts.uri.path()).is_some()
            {
                "smithy-rpc-v2-cbor"
            } else if target.is_some() {
                "json"
            } else if let Some(p) =
                scope.and_then(|s| berth_wire::service::protocol_of_service(s.service()))
            {
                p
            } else if form
                && (body.starts_with(b"Action=") || body.windows(8).any(|w| w == b"&Action="))
            {
                "query"
            } else {
                "json"
            };
            return wire(
                berth_wire::service::error_in(protocol, &e, &request_id),
                &request_id,
            );
        };

        let ctx = self.context(scope, &request_id);
        let model = service.model();
        let meta = service.metadata();

        // The protocol the client speaks, from the request's form; the model says which
        // its service accepts (CloudWatch: CBOR, JSON and query).
        let protocol = if header("smithy-protocol") == Some("rpc-v2-cbor") {
            Protocol::RpcV2Cbor
        } else if target.is_some() {
            Protocol::Json
        } else if meta.speaks("rest-json") {
            Protocol::RestJson
        } else if meta.protocol == "ec2" {
            Protocol::Ec2
        } else {
            Protocol::Query
        };

        let dialect = if protocol == Protocol::Ec2 {
            Dialect::Ec2
        } else {
            Dialect::Aws
        };
        if let Err(e) = self.auth.check(
            &parts,
            SignableBody::Bytes(&body),
            caller.auth_header.as_ref(),
            &caller.query_params,
            dialect,
        ) {
            let answer_in = if meta.speaks(protocol.name()) {
                protocol
            } else {
                Protocol::preferred(model)
            };
            return wire(
                protocol_error(model, answer_in, &e, &request_id),
                &request_id,
            );
        }
        if !meta.speaks(protocol.name()) {
            let e = ApiError::client(
                "UnknownOperationException",
                if meta.speaks("json") {
                    "Missing or malformed X-Amz-Target header"
                } else {
                    "The request is not in a protocol this service accepts"
                },
            );
            return wire(
                protocol_error(model, Protocol::preferred(model), &e, &request_id),
                &request_id,
            );
        }

        let call = match protocol {
            Protocol::Json => Call::Json(
                target
                    .and_then(|t| t.split_once('.'))
                    .map(|(_, op)| op.to_string())
                    .unwrap_or_default(),
            ),
            Protocol::RpcV2Cbor => match cbor_operation(parts.uri.path()) {
                Some((_, op)) => Call::Cbor(op.to_string()),
                None => Call::Cbor(String::new()),
            },
            Protocol::RestJson => {
                let query: Vec<(String, String)> = parts
                    .uri
                    .query()
                    .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                    .unwrap_or_default();
                let router = self.services.router(service);
                match router.find(parts.method.as_str(), parts.uri.path(), &query) {
                    Some(m) => Call::Rest {
                        operation: m.operation.to_string(),
                        labels: m.labels,
                        query,
                        headers: parts
                            .headers
                            .iter()
                            .filter_map(|(k, v)| {
                                Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
                            })
                            .collect(),
                    },
                    None => {
                        let e = ApiError::new(
                            404,
                            "UnknownOperationException",
                            format!(
                                "No {} operation is bound to {} {}",
                                meta.endpoint_prefix,
                                parts.method,
                                parts.uri.path()
                            ),
                        );
                        return wire(
                            protocol_error(model, protocol, &e, &request_id),
                            &request_id,
                        );
                    }
                }
            }
            Protocol::Query | Protocol::Ec2 => {
                let mut p = berth_wire::query::parse_form(&body);
                for (k, v) in &caller.query_params {
                    p.entry(k.clone()).or_insert_with(|| v.clone());
                }
                Call::Query(p)
            }
        };
        let reads = reads_only(call.operation());
        let service = service.clone();
        let call = move || match call {
            Call::Json(op) if op.is_empty() => json_error(
                model,
                &ApiError::client(
                    "UnknownOperationException",
                    "Missing or malformed X-Amz-Target header",
                ),
            ),
            Call::Json(op) => handle_json(service.as_ref(), &ctx, &op, &body),
            Call::Cbor(op) => handle_cbor(service.as_ref(), &ctx, &op, &body),
            Call::Query(params) => handle_query(service.as_ref(), &ctx, &params),
            Call::Rest {
                operation,
                labels,
                query,
                headers,
            } => {
                let req = berth_wire::rest::RestRequest {
                    labels: &labels,
                    query: &query,
                    headers: &headers,
                    body: &body,
                };
                handle_rest_json(service.as_ref(), &ctx, &operation, &req)
            }
        };
        // Reads touch only memory: answer them on this worker. Writes wait for a durable
        // commit (an fsync): run them on the blocking pool so workers stay free for reads.
        let response = if reads {
            call()
        } else {
            match tokio::task::spawn_blocking(call).await {
                Ok(r) => r,
                Err(e) => protocol_error(
                    model,
                    protocol,
                    &ApiError::internal(e.to_string()),
                    &request_id,
                ),
            }
        };
        if response.status >= 500 {
            tracing::warn!(status = response.status, code = ?response.error_code, "request failed");
        }
        wire(response, &request_id)
    }
}

/// A request's operation, with what its protocol handler needs.
enum Call {
    Json(String),
    Cbor(String),
    Query(berth_wire::query::Params),
    Rest {
        operation: String,
        labels: HashMap<String, String>,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
    },
}

impl Call {
    fn operation(&self) -> &str {
        match self {
            Call::Json(op) | Call::Cbor(op) => op,
            Call::Query(p) => p.get("Action").map(String::as_str).unwrap_or_default(),
            Call::Rest { operation, .. } => operation,
        }
    }
}

/// `90s`, `15m`, `2h`, `7d`, `500ms` in milliseconds.
fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// smithy-rpc-v2-cbor's path: `/service/{ServiceName}/operation/{Operation}`.
fn cbor_operation(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/service/")?;
    let (service, op) = rest.split_once("/operation/")?;
    (!service.is_empty() && !op.is_empty() && !op.contains('/')).then_some((service, op))
}

/// A refused signature in S3's words.
fn s3_auth_error(e: &ApiError) -> berth_s3::S3Error {
    let code = match e.code.as_str() {
        "InvalidSignatureException" => "SignatureDoesNotMatch",
        "UnrecognizedClientException" => "InvalidAccessKeyId",
        "RequestTimeTooSkewed" => "RequestTimeTooSkewed",
        "AuthorizationQueryParametersError" => "AuthorizationQueryParametersError",
        _ => "AccessDenied",
    };
    berth_s3::S3Error::new(e.status, code, e.message.clone())
}
