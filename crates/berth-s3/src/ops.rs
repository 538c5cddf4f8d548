//! Which S3 operation a request is. S3 has no operation name on the wire: botocore's
//! model binds each operation to a method, a URI template (service, bucket or object) with
//! literal query keys (`?acl`, `?list-type=2`), and required query and header members.
//! The operation is the one whose bindings all hold with the most of them, so PutObject,
//! CopyObject (`x-amz-copy-source`) and UploadPart (`partNumber`, `uploadId`) are told
//! apart.

use berth_wire::model::LazyModel;
use std::collections::HashMap;
use std::sync::OnceLock;

pub static MODEL: LazyModel = LazyModel::new(include_bytes!("../../berth-wire/models/s3.json.gz"));

/// Where an operation's URI points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Service,
    Bucket,
    Object,
}

struct Binding {
    name: &'static str,
    method: &'static str,
    target: Target,
    /// Query keys the URI names, with the value when it names one.
    literals: Vec<(&'static str, Option<&'static str>)>,
    required_query: Vec<&'static str>,
    required_headers: Vec<&'static str>,
}

fn bindings() -> &'static [Binding] {
    static ALL: OnceLock<Vec<Binding>> = OnceLock::new();
    ALL.get_or_init(|| {
        let model = MODEL.get();
        let mut out = vec![];
        for (name, op) in &model.operations {
            let Some(http) = &op.http else { continue };
            let (path, query) = http
                .request_uri
                .split_once('?')
                .unwrap_or((&http.request_uri, ""));
            let target = match path {
                "/" => Target::Service,
                "/{Bucket}" => Target::Bucket,
                "/{Bucket}/{Key+}" => Target::Object,
                // Operations on other paths (S3 Object Lambda's) are not served here.
                _ => continue,
            };
            let literals = query
                .split('&')
                .filter(|q| !q.is_empty() && !q.starts_with("x-id="))
                .map(|q| match q.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (q, None),
                })
                .collect();
            let mut required_query = vec![];
            let mut required_headers = vec![];
            if let Some(shape) = model.input_shape(name) {
                for (member, m) in &shape.members {
                    if !shape.required.contains(member) {
                        continue;
                    }
                    let wire = m.location_name.as_deref().unwrap_or(member);
                    match m.location.as_deref() {
                        Some("querystring") => required_query.push(wire),
                        Some("header") => required_headers.push(wire),
                        _ => {}
                    }
                }
            }
            out.push(Binding {
                name,
                method: &http.method,
                target,
                literals,
                required_query,
                required_headers,
            });
        }
        // A fixed order, so equal matches always resolve the same way.
        out.sort_by_key(|b| b.name);
        out
    })
}

/// The operation a request is, if any matches. `has_header` is asked with lowercase names.
pub fn identify(
    method: &str,
    target: Target,
    query: &HashMap<String, String>,
    has_header: impl Fn(&str) -> bool,
) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for b in bindings() {
        if b.method != method || b.target != target {
            continue;
        }
        let literals_hold = b.literals.iter().all(|(k, v)| match v {
            Some(v) => query.get(*k).map(String::as_str) == Some(*v),
            None => query.contains_key(*k),
        });
        if !literals_hold
            || !b.required_query.iter().all(|k| query.contains_key(*k))
            || !b
                .required_headers
                .iter()
                .all(|h| has_header(&h.to_ascii_lowercase()))
        {
            continue;
        }
        let score = b.literals.len() + b.required_query.len() + b.required_headers.len();
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, b.name));
        }
    }
    best.map(|(_, name)| name)
}
