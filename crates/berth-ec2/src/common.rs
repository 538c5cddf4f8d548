//! Shared vocabulary: where records live in the store, identifiers, errors, and the
//! optimistic-transaction loop every write goes through.

use berth_store::{Cond, Op, Record, Store, StoreError};
use berth_wire::{ApiError, ApiResult};
use serde_json::Value;

pub const VPC: &str = "vpc";
pub const SUBNET: &str = "subnet";
pub const GROUP: &str = "security-group";
pub const DEFAULTS: &str = "defaults";

/// One account in one region: every EC2 record is scoped by both.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub store: &'a dyn Store,
    pub account: &'a str,
    pub region: &'a str,
}

impl<'a> Scope<'a> {
    pub fn new(store: &'a dyn Store, account: &'a str, region: &'a str) -> Self {
        Scope {
            store,
            account,
            region,
        }
    }

    /// `/{account}/{region}/ec2/{kind}/{id}`
    pub fn key(&self, kind: &str, id: &str) -> String {
        format!("/{}/{}/ec2/{kind}/{id}", self.account, self.region)
    }

    pub fn get(&self, kind: &str, id: &str) -> Option<Record> {
        self.store.get(&self.key(kind, id))
    }

    /// Every record of `kind`, in id order.
    pub fn list(&self, kind: &str) -> Vec<Record> {
        self.store
            .list(&format!("/{}/{}/ec2/{kind}/", self.account, self.region))
    }

    pub fn arn(&self, resource: &str) -> String {
        format!("arn:aws:ec2:{}:{}:{resource}", self.region, self.account)
    }
}

/// An EC2-style id: the prefix and 17 random hex digits.
pub fn new_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &hex[..17])
}

pub fn str_of<'v>(v: &'v Value, field: &str) -> &'v str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

pub fn invalid_value(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterValue", msg)
}

pub fn missing(param: &str) -> ApiError {
    ApiError::client(
        "MissingParameter",
        format!("The request must contain the parameter {param}"),
    )
}

/// A parameter Berth accepts in the model but does not act on yet: say so rather than
/// silently ignoring it.
pub fn unsupported(operation: &str, param: &str) -> ApiError {
    invalid_value(format!(
        "{param} is not supported by Berth's {operation} yet"
    ))
}

pub fn vpc_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidVpcID.NotFound",
        format!("The vpc ID '{id}' does not exist"),
    )
}

pub fn subnet_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidSubnetID.NotFound",
        format!("The subnet ID '{id}' does not exist"),
    )
}

pub fn group_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}

/// Ids without their resource's prefix are malformed; anything with the prefix is looked up
/// (and reported NotFound if absent), as EC2 does for hand-typed ids like `subnet-123`.
pub fn check_id(id: &str, prefix: &str) -> ApiResult<()> {
    if id.starts_with(&format!("{prefix}-")) && id.len() > prefix.len() + 1 {
        return Ok(());
    }
    Err(match prefix {
        "vpc" => ApiError::client("InvalidVpcID.Malformed", format!("Invalid id: \"{id}\"")),
        "subnet" => ApiError::client("InvalidSubnetID.Malformed", format!("Invalid id: \"{id}\"")),
        "sg" => ApiError::client(
            "InvalidGroupId.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
        ),
        "sgr" => ApiError::client(
            "InvalidSecurityGroupRuleId.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"sgr-...\")"),
        ),
        _ => invalid_value(format!("Invalid id: \"{id}\"")),
    })
}

pub fn store_err(e: StoreError) -> ApiError {
    ApiError::internal(e.to_string())
}

pub use berth_toolkit::Plan;

/// Run `attempt` until its transaction commits (berth_toolkit::commit), with EC2's error.
pub fn commit<T>(store: &dyn Store, attempt: impl FnMut() -> ApiResult<Plan<T>>) -> ApiResult<T> {
    let busy =
        || ApiError::internal("too many concurrent changes to the same resources; try again");
    berth_toolkit::commit(store, busy, attempt)
}

/// Put `value` back at `rec`'s key on condition it is unchanged: used to make a parent
/// record (a VPC, a group) a lock for changes that depend on it.
pub fn touch(rec: &Record, conds: &mut Vec<Cond>, ops: &mut Vec<Op>, value: Value) {
    conds.push(Cond::Revision(rec.key.clone(), rec.revision));
    ops.push(Op::Put(rec.key.clone(), value));
}

#[cfg(test)]
pub mod test_support {
    use berth_store::SqliteStore;
    use berth_wire::typed::Operation;
    use berth_wire::{ApiResult, ValidationCodes};
    use serde_json::Value;

    /// Run a typed handler on a document as the service does: decode, run, encode.
    pub fn doc<O: Operation>(
        input: &Value,
        handler: impl FnOnce(O::Input) -> ApiResult<O::Output>,
    ) -> ApiResult<Value> {
        berth_wire::typed::call::<O>(ValidationCodes::ec2(), input.clone(), handler)
    }

    /// A fresh store in a temporary directory (kept alive by the returned guard).
    pub fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }
}
