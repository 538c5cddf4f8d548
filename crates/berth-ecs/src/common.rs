//! Shared vocabulary of the ECS module: store keys, ARNs, identifiers, errors.

use berth_store::{Record, Store, StoreError};
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::Value;

pub const INVALID: &str = "InvalidParameterException";
pub const CLIENT: &str = "ClientException";

pub fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::client(INVALID, msg)
}

pub fn client(msg: impl Into<String>) -> ApiError {
    ApiError::client(CLIENT, msg)
}

pub fn cluster_not_found() -> ApiError {
    ApiError::client("ClusterNotFoundException", "Cluster not found.")
}

pub use berth_toolkit::Plan;

/// What ECS answers when writers keep conflicting over a record (berth_toolkit::commit).
pub fn busy(message: &'static str) -> ApiError {
    ApiError::new(500, "ServerException", message)
}

/// Store failures are the server's fault, never the caller's.
pub fn store_err(e: StoreError) -> ApiError {
    ApiError::new(500, "ServerException", e.to_string())
}

/// `/{account}/{region}/ecs/{rest}`: every ECS record lives under its account and region.
pub fn key(ctx: &RequestContext, rest: &str) -> String {
    format!("/{}/{}/ecs/{rest}", ctx.account, ctx.region)
}

pub fn arn(ctx: &RequestContext, resource: &str) -> String {
    format!("arn:aws:ecs:{}:{}:{resource}", ctx.region, ctx.account)
}

pub fn root_arn(ctx: &RequestContext) -> String {
    format!("arn:aws:iam::{}:root", ctx.account)
}

/// An ECS ARN split into (region, account, resource type, rest).
pub struct ParsedArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub kind: &'a str,
    pub rest: &'a str,
}

pub fn parse_arn(s: &str) -> Option<ParsedArn<'_>> {
    let mut it = s.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    let _partition = it.next()?;
    if it.next()? != "ecs" {
        return None;
    }
    let region = it.next()?;
    let account = it.next()?;
    let (kind, rest) = it.next()?.split_once('/')?;
    Some(ParsedArn {
        region,
        account,
        kind,
        rest,
    })
}

/// An identifier given as a name or an ARN of `kind`; the ARN must be for this account and region.
pub fn name_from(ctx: &RequestContext, id: &str, kind: &str) -> Option<String> {
    if id.starts_with("arn:") {
        let a = parse_arn(id)?;
        if a.kind != kind || a.region != ctx.region || a.account != ctx.account {
            return None;
        }
        Some(a.rest.to_string())
    } else {
        Some(id.to_string())
    }
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

pub fn arr_of<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Names made of letters, digits, hyphens and underscores, 1 to 255 long (families, clusters, containers).
pub fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The cluster named by `input[field]` (default "default"), which must be ACTIVE.
pub fn active_cluster(
    store: &dyn Store,
    ctx: &RequestContext,
    input: &Value,
    field: &str,
) -> ApiResult<Record> {
    let id = str_of(input, field).unwrap_or("default");
    let name = name_from(ctx, id, "cluster").ok_or_else(cluster_not_found)?;
    match store.get(&key(ctx, &format!("cluster/{name}"))) {
        Some(r) if r.value["status"] == "ACTIVE" => Ok(r),
        _ => Err(cluster_not_found()),
    }
}

/// Tags as the API carries them: a list of {key, value}. Keys must be unique and the
/// `aws:` prefix is reserved.
pub fn check_tags(tags: &[Value]) -> ApiResult<()> {
    if tags.len() > 50 {
        return Err(invalid("The number of tags exceeds the limit of 50."));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        let k = str_of(t, "key").ok_or_else(|| invalid("Tag keys must not be empty."))?;
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid("Tag keys that begin with 'aws:' are reserved."));
        }
        if !seen.insert(k) {
            return Err(invalid(format!("Duplicate tag key: {k}")));
        }
    }
    Ok(())
}

/// Merge `new` tags over `old` (same key replaces).
pub fn merge_tags(old: &[Value], new: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = old.to_vec();
    for t in new {
        let k = str_of(t, "key");
        match out.iter_mut().find(|o| str_of(o, "key") == k) {
            Some(o) => *o = t.clone(),
            None => out.push(t.clone()),
        }
    }
    out
}

pub fn include_has(input: &Value, what: &str) -> bool {
    arr_of(input, "include").iter().any(|v| v == what)
}

/// A task or service record as the API shows it: without Berth's own bookkeeping
/// (`_berth`, also in a service's deployments), and with its tags only when asked for.
pub(crate) fn public_view(v: &Value, with_tags: bool) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("_berth");
        if !with_tags {
            o.remove("tags");
        }
        for d in o
            .get_mut("deployments")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(d) = d.as_object_mut() {
                d.remove("_berth");
            }
        }
    }
    v
}
