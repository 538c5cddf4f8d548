//! Shared vocabulary: where records live, ARNs, errors, tags, paging and the optimistic
//! transaction loop every write goes through.
//!
//! Records (all under `/{account}/{region}/elbv2/`):
//! - `lb/{name}`: `{"LoadBalancer": <model shape>, "Tags": [...], "Attributes": {k: v}}`
//! - `tg/{name}`: `{"TargetGroup": <model shape>, "Tags", "Attributes", "UsedBy": {listener
//!   or rule ARN: load balancer ARN}}`. `UsedBy` is kept by every write of a listener or
//!   rule, so "in use" and "one load balancer per target group" are checked under the same
//!   transaction that changes them.
//! - `targets/{tg id}`: `{"TargetGroupArn", "Targets": [{Id, Port, AvailabilityZone?, State,
//!   Reason, Description}]}`: the registered targets with their health, which a health
//!   checker updates on its own (compare-and-swap on this record only).
//! - `listener/{lb id}/{listener id}`: `{"Listener": <shape>, "Tags", "DefaultRuleId",
//!   "DefaultRuleTags"}`. A load balancer's record is rewritten (conditionally) whenever one
//!   of its listeners changes, so port uniqueness holds under concurrency.
//! - `rule/{listener id}/{rule id}`: `{"Rule": <shape>, "Tags"}`. The listener's record is
//!   the lock for its rules' priorities.

use berth_store::{Record, Store};
use berth_types::elbv2;
use berth_wire::page::{page_after, params, Page};
use berth_wire::{ApiError, ApiResult};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use berth_model::elbv2::arn::{parse as parse_arn, Arn};
use berth_model::elbv2::key;

pub const LB: key::Kind = key::Kind::Lb;
pub const TG: key::Kind = key::Kind::Tg;
pub const TARGETS: key::Kind = key::Kind::Targets;
pub const LISTENER: key::Kind = key::Kind::Listener;
pub const RULE: key::Kind = key::Kind::Rule;

/// One account in one region.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub store: &'a dyn Store,
    pub account: &'a str,
    pub region: &'a str,
    /// The request's time (seconds since the epoch) from the injectable clock.
    pub now: f64,
    /// `berth up --publish-lb`: the host address every listener is also bound on.
    pub publish: Option<std::net::Ipv4Addr>,
}

impl<'a> Scope<'a> {
    pub fn new(store: &'a dyn Store, account: &'a str, region: &'a str, now: f64) -> Self {
        Scope {
            store,
            account,
            region,
            now,
            publish: None,
        }
    }
    /// `/{account}/{region}/elbv2/{kind}/{id}`
    pub fn key(&self, kind: key::Kind, id: &str) -> String {
        key::key(self.account, self.region, kind, id)
    }
    pub fn get(&self, kind: key::Kind, id: &str) -> Option<Record> {
        self.store.get(&self.key(kind, id))
    }
    /// Records of `kind` whose id starts with `prefix`, in key order.
    pub fn list(&self, kind: key::Kind, prefix: &str) -> Vec<Record> {
        self.store.list(&self.key(kind, prefix))
    }
}

/// 16 random lowercase hex digits: the id in every ELBv2 ARN.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

// ---- errors -------------------------------------------------------------------------------

pub fn validation(msg: impl Into<String>) -> ApiError {
    ApiError::client("ValidationError", msg)
}
pub fn invalid_config(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidConfigurationRequest", msg)
}
pub fn lb_not_found() -> ApiError {
    ApiError::client(
        "LoadBalancerNotFound",
        "One or more load balancers not found",
    )
}
pub fn tg_not_found() -> ApiError {
    ApiError::client("TargetGroupNotFound", "One or more target groups not found")
}
pub fn listener_not_found() -> ApiError {
    ApiError::client("ListenerNotFound", "One or more listeners not found")
}
pub fn rule_not_found() -> ApiError {
    ApiError::client("RuleNotFound", "One or more rules not found")
}
pub fn not_permitted(msg: impl Into<String>) -> ApiError {
    ApiError::client("OperationNotPermitted", msg)
}
/// A valid request whose effect needs a part of Berth that does not exist yet.
pub fn not_supported(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        501,
        "NotImplemented",
        format!("{what} is not supported by Berth's elasticloadbalancing service yet"),
    )
}
pub fn bad_arn(arn: &str, what: &str) -> ApiError {
    validation(format!("'{arn}' is not a valid {what} ARN"))
}

// ---- values -------------------------------------------------------------------------------

pub fn str_of<'v>(v: &'v Value, field: &str) -> &'v str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

pub fn opt_str<'v>(v: &'v Value, field: &str) -> Option<&'v str> {
    v.get(field).and_then(Value::as_str)
}

/// A name as ELBv2 allows it for load balancers and target groups: 1-32 alphanumerics and
/// hyphens, not starting or ending with a hyphen.
pub fn check_name(name: &str, what: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 32 {
        return Err(validation(format!(
            "The {what} name '{name}' cannot be longer than '32' characters"
        )));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(validation(format!(
            "The {what} name '{name}' can only contain characters that are alphanumeric characters or hyphens(-)"
        )));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(validation(format!(
            "The {what} name '{name}' cannot begin or end with a hyphen"
        )));
    }
    Ok(())
}

// ---- tags ---------------------------------------------------------------------------------

pub const MAX_TAGS: usize = 50;

/// The tags of a request, checked (no duplicate keys, at most 50, no `aws:` prefix), as
/// records keep them.
pub fn request_tags(tags: &[elbv2::Tag]) -> ApiResult<Vec<berth_model::elbv2::Tag>> {
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        let k = t.key.as_str();
        if !seen.insert(k) {
            return Err(ApiError::client(
                "DuplicateTagKeys",
                format!("Tag key '{k}' is duplicated"),
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(validation(format!(
                "Tag keys starting with 'aws:' are reserved: '{k}'"
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    Ok(tags
        .iter()
        .map(|t| berth_model::elbv2::Tag {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            extra: Default::default(),
        })
        .collect())
}

pub fn too_many_tags() -> ApiError {
    ApiError::client(
        "TooManyTags",
        format!("A resource can have at most {MAX_TAGS} tags"),
    )
}

// ---- paging -------------------------------------------------------------------------------

/// ELBv2's Marker/PageSize paging over items already sorted by `key`.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    page_size: Option<i32>,
    marker: Option<&str>,
) -> ApiResult<Page<T>> {
    let (max, after) = params(
        page_size.map(i64::from),
        marker,
        400,
        400,
        "ValidationError",
    )?;
    Ok(page_after(items, key, max, after))
}

// ---- outputs ------------------------------------------------------------------------------

/// A model shape as a record keeps it (a load balancer, target group, listener, rule, or
/// their parts) read as the output type. Records are written from checked requests, so a
/// record that does not fit is Berth's fault: a 500, not the caller's 400.
pub fn shape<T: DeserializeOwned>(v: &Value) -> ApiResult<T> {
    T::deserialize(v).map_err(|e| {
        ApiError::internal(format!(
            "a stored ELBv2 record does not fit the model's output shape: {e}"
        ))
    })
}

/// A stored record (or part of one) as its berth-model type; one that does not fit is
/// Berth's fault, a 500.
pub fn record<T: DeserializeOwned>(v: &Value) -> ApiResult<T> {
    berth_model::elbv2::from_value(v)
        .map_err(|e| ApiError::internal(format!("a stored ELBv2 record does not fit: {e}")))
}

/// [`shape`] for each of `values`.
pub fn shapes<T: DeserializeOwned>(values: &[Value]) -> ApiResult<Vec<T>> {
    values.iter().map(shape).collect()
}

// ---- writes -------------------------------------------------------------------------------

pub use berth_toolkit::Plan;

/// Run `attempt` until its transaction commits (berth_toolkit::commit), with ELBv2's error.
pub fn commit<T>(store: &dyn Store, attempt: impl FnMut() -> ApiResult<Plan<T>>) -> ApiResult<T> {
    let busy =
        || ApiError::internal("too many concurrent changes to the same resources; try again");
    berth_toolkit::commit(store, busy, attempt)
}

#[cfg(test)]
pub mod test_support {
    use berth_store::SqliteStore;

    /// A fresh store in a temporary directory (kept alive by the returned guard).
    pub fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }
}
