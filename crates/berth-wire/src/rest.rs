//! The rest-json protocol (Scheduler; later EKS and App Runner). An operation is bound to
//! a method and a URI template; its input members come from path labels, the query
//! string, headers and a JSON body, as the model's `location` of each member says. They
//! are gathered into the same JSON document the other protocols produce, so handlers do
//! not know which protocol carried them. Results go back the same way: header-bound
//! members as headers, a payload member as the body, the rest as a JSON body.

use crate::error::{ApiError, ApiResult};
use crate::model::{Member, Model, Shape, ShapeKind};
use serde_json::{Map, Value};
use std::collections::HashMap;

enum Segment {
    Literal(String),
    Label(String),
    /// `{Key+}`: the rest of the path, slashes included.
    Greedy(String),
}

struct Route {
    operation: String,
    method: String,
    segments: Vec<Segment>,
    /// Query keys the URI template names (`?tagging`, `?list-type=2`).
    literals: Vec<(String, Option<String>)>,
}

/// Which operation a request is, from its method, path and query.
pub struct Router {
    routes: Vec<Route>,
}

/// A request's operation and its path labels (percent-decoded).
pub struct Matched<'a> {
    pub operation: &'a str,
    pub labels: HashMap<String, String>,
}

impl Router {
    pub fn new(model: &Model) -> Router {
        let mut routes: Vec<Route> = model
            .operations
            .iter()
            .filter_map(|(name, op)| {
                let http = op.http.as_ref()?;
                let (path, query) = http
                    .request_uri
                    .split_once('?')
                    .unwrap_or((&http.request_uri, ""));
                let segments = path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(l) => match l.strip_suffix('+') {
                                Some(g) => Segment::Greedy(g.to_string()),
                                None => Segment::Label(l.to_string()),
                            },
                            None => Segment::Literal(s.to_string()),
                        },
                    )
                    .collect();
                let literals = query
                    .split('&')
                    .filter(|q| !q.is_empty())
                    .map(|q| match q.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (q.to_string(), None),
                    })
                    .collect();
                Some(Route {
                    operation: name.clone(),
                    method: http.method.clone(),
                    segments,
                    literals,
                })
            })
            .collect();
        // The most specific template first: more literal segments, then more literal keys.
        routes.sort_by_key(|r| {
            let lits = r
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            (
                std::cmp::Reverse(lits),
                std::cmp::Reverse(r.literals.len()),
                r.operation.clone(),
            )
        });
        Router { routes }
    }

    pub fn find(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
    ) -> Option<Matched<'_>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        'routes: for r in self.routes.iter().filter(|r| r.method == method) {
            let mut labels = HashMap::new();
            let mut i = 0;
            for seg in &r.segments {
                match seg {
                    Segment::Literal(l) => {
                        if parts.get(i) != Some(&l.as_str()) {
                            continue 'routes;
                        }
                        i += 1;
                    }
                    Segment::Label(l) => {
                        let Some(p) = parts.get(i) else {
                            continue 'routes;
                        };
                        labels.insert(l.clone(), percent_decode(p));
                        i += 1;
                    }
                    Segment::Greedy(l) => {
                        if i >= parts.len() {
                            continue 'routes;
                        }
                        labels.insert(l.clone(), percent_decode(&parts[i..].join("/")));
                        i = parts.len();
                    }
                }
            }
            if i != parts.len() {
                continue;
            }
            let has = |k: &str, v: &Option<String>| {
                query
                    .iter()
                    .any(|(qk, qv)| qk == k && v.as_ref().is_none_or(|v| v == qv))
            };
            if r.literals.iter().all(|(k, v)| has(k, v)) {
                return Some(Matched {
                    operation: &r.operation,
                    labels,
                });
            }
        }
        None
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a request carries besides its path labels.
pub struct RestRequest<'a> {
    pub labels: &'a HashMap<String, String>,
    pub query: &'a [(String, String)],
    /// Header names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The input document of an operation whose input shape is `shape`.
pub fn decode(
    model: &Model,
    shape: &Shape,
    req: &RestRequest,
    serialization: &str,
) -> ApiResult<Value> {
    let bad = |m: String| ApiError::client(serialization, m);
    let mut doc = Map::new();
    let mut bound_query: Vec<&str> = vec![];
    let mut query_map: Option<(&str, &Member)> = None;
    for (name, m) in &shape.members {
        let wire = m.location_name.as_deref().unwrap_or(name);
        let target = model.shape(&m.shape);
        match m.location.as_deref() {
            Some("uri") => {
                if let Some(v) = req.labels.get(wire) {
                    doc.insert(
                        name.clone(),
                        scalar(target, v).map_err(|e| bad(format!("{name}: {e}")))?,
                    );
                }
            }
            Some("querystring") if target.kind == ShapeKind::Map => query_map = Some((name, m)),
            Some("querystring") => {
                bound_query.push(wire);
                let values: Vec<&str> = req
                    .query
                    .iter()
                    .filter(|(k, _)| k == wire)
                    .map(|(_, v)| v.as_str())
                    .collect();
                if values.is_empty() {
                    continue;
                }
                let v = if target.kind == ShapeKind::List {
                    let inner =
                        model.shape(&target.member.as_ref().expect("list has a member").shape);
                    Value::Array(
                        values
                            .iter()
                            .map(|v| scalar(inner, v))
                            .collect::<Result<_, _>>()
                            .map_err(|e| bad(format!("{name}: {e}")))?,
                    )
                } else {
                    scalar(target, values[0]).map_err(|e| bad(format!("{name}: {e}")))?
                };
                doc.insert(name.clone(), v);
            }
            Some("header") => {
                let lower = wire.to_ascii_lowercase();
                let Some((_, v)) = req.headers.iter().find(|(k, _)| *k == lower) else {
                    continue;
                };
                let v = if target.kind == ShapeKind::List {
                    let inner =
                        model.shape(&target.member.as_ref().expect("list has a member").shape);
                    Value::Array(
                        v.split(',')
                            .map(|p| scalar(inner, p.trim()))
                            .collect::<Result<_, _>>()
                            .map_err(|e| bad(format!("{name}: {e}")))?,
                    )
                } else {
                    scalar(target, v).map_err(|e| bad(format!("{name}: {e}")))?
                };
                doc.insert(name.clone(), v);
            }
            Some("headers") => {
                let prefix = wire.to_ascii_lowercase();
                let map: Map<String, Value> = req
                    .headers
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((
                            k.strip_prefix(&prefix)?.to_string(),
                            Value::from(v.as_str()),
                        ))
                    })
                    .collect();
                if !map.is_empty() {
                    doc.insert(name.clone(), Value::Object(map));
                }
            }
            _ => {}
        }
    }
    if let Some((name, _)) = query_map {
        let map: Map<String, Value> = req
            .query
            .iter()
            .filter(|(k, _)| !bound_query.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        if !map.is_empty() {
            doc.insert(name.to_string(), Value::Object(map));
        }
    }
    let blank = req.body.iter().all(u8::is_ascii_whitespace);
    match shape.payload.as_deref() {
        Some(p) => {
            let target = model.shape(&shape.member(p).expect("payload is a member").shape);
            if !blank || !matches!(target.kind, ShapeKind::Structure) {
                let v = match target.kind {
                    ShapeKind::Structure | ShapeKind::List | ShapeKind::Map => {
                        json_body(req.body, &bad)?
                    }
                    ShapeKind::Blob => {
                        use base64::Engine;
                        Value::from(base64::engine::general_purpose::STANDARD.encode(req.body))
                    }
                    _ => Value::from(String::from_utf8_lossy(req.body).into_owned()),
                };
                if !(blank && target.kind != ShapeKind::Structure) {
                    doc.insert(p.to_string(), v);
                }
            }
        }
        None if !blank => {
            let Value::Object(body) = json_body(req.body, &bad)? else {
                return Err(bad("Expected a JSON object for the request body".into()));
            };
            for (name, m) in &shape.members {
                if m.location.is_none() {
                    if let Some(v) = body.get(name) {
                        doc.insert(name.clone(), v.clone());
                    }
                }
            }
        }
        None => {}
    }
    Ok(Value::Object(doc))
}

fn json_body(body: &[u8], bad: &dyn Fn(String) -> ApiError) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| bad(format!("Malformed JSON request body: {e}")))
}

/// A path label, query value or header as the member's type.
fn scalar(shape: &Shape, s: &str) -> Result<Value, String> {
    Ok(match shape.kind {
        ShapeKind::Integer | ShapeKind::Long => Value::from(
            s.parse::<i64>()
                .map_err(|_| format!("'{s}' is not an integer"))?,
        ),
        ShapeKind::Double | ShapeKind::Float => match s {
            "NaN" | "Infinity" | "-Infinity" => Value::from(s),
            _ => serde_json::Number::from_f64(
                s.parse().map_err(|_| format!("'{s}' is not a number"))?,
            )
            .map(Value::Number)
            .ok_or_else(|| format!("'{s}' is not a number"))?,
        },
        ShapeKind::Boolean => match s {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("'{s}' is not a boolean")),
        },
        ShapeKind::Timestamp => match crate::time::parse_iso8601(s)
            .or_else(|| crate::time::parse_http_date(s))
            .or_else(|| s.parse::<f64>().ok())
        {
            Some(t) => serde_json::Number::from_f64(t)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            None => return Err(format!("'{s}' is not a timestamp")),
        },
        _ => Value::from(s),
    })
}

/// A result in rest-json: status, headers and body.
pub struct RestReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn encode(model: &Model, operation: &str, doc: &Value) -> RestReply {
    let op = &model.operations[operation];
    let mut reply = RestReply {
        status: op
            .http
            .as_ref()
            .and_then(|h| h.response_code)
            .unwrap_or(200),
        headers: vec![],
        body: vec![],
    };
    let Some(shape) = op.output.as_deref().map(|s| model.shape(s)) else {
        return reply;
    };
    let mut body = Map::new();
    for (name, m) in &shape.members {
        let Some(v) = doc.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let wire = m.location_name.as_deref().unwrap_or(name);
        match m.location.as_deref() {
            Some("header") => reply
                .headers
                .push((wire.to_string(), header_text(model.shape(&m.shape), v))),
            Some("headers") => {
                if let Value::Object(o) = v {
                    for (k, x) in o {
                        reply.headers.push((
                            format!("{wire}{k}"),
                            x.as_str().unwrap_or_default().to_string(),
                        ));
                    }
                }
            }
            Some("statusCode") => {
                reply.status = v
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .unwrap_or(reply.status)
            }
            _ if shape.payload.as_deref() == Some(name.as_str()) => {
                reply.body = match (model.shape(&m.shape).kind, v) {
                    (ShapeKind::Blob, Value::String(s)) => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .unwrap_or_else(|_| s.as_bytes().to_vec())
                    }
                    (_, Value::String(s)) => s.as_bytes().to_vec(),
                    _ => crate::service::to_json(v),
                };
            }
            _ => {
                body.insert(name.clone(), v.clone());
            }
        }
    }
    if shape.payload.is_none() {
        reply.body = crate::service::to_json(&Value::Object(body));
    }
    reply
}

fn header_text(shape: &Shape, v: &Value) -> String {
    match (shape.kind, v) {
        (ShapeKind::Timestamp, Value::Number(n)) => {
            crate::time::format_http_date(n.as_f64().unwrap_or_default())
        }
        (ShapeKind::List, Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// An error in rest-json: the code in `x-amzn-errortype`, the message in the body under
/// the member name the error shape uses (`message` or `Message`), the status the model
/// gives the error.
pub fn error(model: &Model, e: &ApiError) -> RestReply {
    let shape = model.shapes.get(&e.code);
    let status = shape
        .and_then(|s| s.error.as_ref())
        .and_then(|t| t.http_status_code)
        .filter(|_| e.status < 500)
        .unwrap_or(e.status);
    let key = match shape {
        Some(s) if s.member("Message").is_some() => "Message",
        _ => "message",
    };
    let mut body = Map::new();
    body.insert(key.to_string(), Value::from(e.message.as_str()));
    RestReply {
        status,
        headers: vec![("x-amzn-errortype".to_string(), e.code.clone())],
        body: crate::service::to_json(&Value::Object(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LazyModel;

    static SCHEDULER: LazyModel = LazyModel::new(include_bytes!("../models/scheduler.json.gz"));

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn routes_by_method_and_template() {
        let m = SCHEDULER.get();
        let r = Router::new(m);
        let hit = r.find("GET", "/schedules/nightly%2Drun", &[]).unwrap();
        assert_eq!(hit.operation, "GetSchedule");
        assert_eq!(hit.labels["Name"], "nightly-run");
        assert_eq!(
            r.find("GET", "/schedules", &[]).unwrap().operation,
            "ListSchedules"
        );
        assert_eq!(
            r.find("DELETE", "/schedule-groups/g", &[])
                .unwrap()
                .operation,
            "DeleteScheduleGroup"
        );
        assert!(r.find("PATCH", "/schedules/x", &[]).is_none());
        assert!(r.find("GET", "/schedules/a/b", &[]).is_none());
        assert!(r.find("GET", "/nothing", &[]).is_none());
    }

    #[test]
    fn gathers_members_from_every_location() {
        let m = SCHEDULER.get();
        let labels = HashMap::from([("Name".to_string(), "n".to_string())]);
        let query = q(&[("groupName", "g")]);
        let req = RestRequest {
            labels: &labels,
            query: &query,
            headers: &[],
            body: b"",
        };
        let doc = decode(
            m,
            m.input_shape("GetSchedule").unwrap(),
            &req,
            "ValidationException",
        )
        .unwrap();
        assert_eq!(doc, serde_json::json!({"Name": "n", "GroupName": "g"}));

        let query = q(&[("MaxResults", "7"), ("State", "ENABLED")]);
        let req = RestRequest {
            labels: &HashMap::new(),
            query: &query,
            headers: &[],
            body: b"",
        };
        let doc = decode(
            m,
            m.input_shape("ListSchedules").unwrap(),
            &req,
            "ValidationException",
        )
        .unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"MaxResults": 7, "State": "ENABLED"})
        );

        let query = q(&[("MaxResults", "seven")]);
        let req = RestRequest {
            labels: &HashMap::new(),
            query: &query,
            headers: &[],
            body: b"",
        };
        assert!(decode(
            m,
            m.input_shape("ListSchedules").unwrap(),
            &req,
            "ValidationException"
        )
        .is_err());

        let body = br#"{"ScheduleExpression":"rate(1 minute)","Name":"ignored-in-body"}"#;
        let req = RestRequest {
            labels: &labels,
            query: &[],
            headers: &[],
            body,
        };
        let doc = decode(
            m,
            m.input_shape("CreateSchedule").unwrap(),
            &req,
            "ValidationException",
        )
        .unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"Name": "n", "ScheduleExpression": "rate(1 minute)"})
        );

        let req = RestRequest {
            labels: &labels,
            query: &[],
            headers: &[],
            body: b"{",
        };
        assert!(decode(
            m,
            m.input_shape("CreateSchedule").unwrap(),
            &req,
            "ValidationException"
        )
        .is_err());
    }

    #[test]
    fn errors_take_the_models_status_and_member_name() {
        let m = SCHEDULER.get();
        let r = error(m, &ApiError::client("ResourceNotFoundException", "gone"));
        assert_eq!(r.status, 404);
        assert_eq!(r.body, br#"{"Message":"gone"}"#);
        assert_eq!(
            r.headers,
            vec![(
                "x-amzn-errortype".to_string(),
                "ResourceNotFoundException".to_string()
            )]
        );
    }
}
