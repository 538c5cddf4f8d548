//! `clientToken`: the SDKs fill it in on every RunTask and CreateService, and retry with
//! the same one when an answer is lost. A retry of the same request gets the first
//! answer and creates nothing; the same token with a different request is refused.
//!
//! A token's record (`/_ecs/client-token/<account>/<region>/<operation>/<token>`) holds a
//! fingerprint of the request and what the first one made; it is written in the same
//! transaction as what it records, so two racing retries cannot both create. Records
//! count for 24 hours; once an hour, a request that writes one removes the expired ones.

use crate::Ecs;
use berth_store::{Cond, Op, Record};
use berth_wire::{ApiError, RequestContext};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

const PREFIX: &str = "/_ecs/client-token/";
const LIFETIME_SECS: f64 = 24.0 * 3600.0;

/// A request's token and, if one was recorded before, that record.
pub(crate) struct ClientToken {
    key: String,
    fingerprint: String,
    earlier: Option<Record>,
}

/// What an earlier request with the same token says of this one.
pub(crate) enum Earlier {
    /// No earlier request (or it expired): go on, and record this one.
    None,
    /// The same request: answer with what it made.
    Same(Value),
    /// A different request: refuse.
    Different(Value),
}

impl ClientToken {
    /// The request's clientToken and the earlier request that used it, if any.
    pub(crate) fn of(
        ecs: &Ecs,
        ctx: &RequestContext,
        operation: &str,
        input: &Value,
    ) -> Option<ClientToken> {
        let token = input.get("clientToken")?.as_str()?;
        let mut request = input.clone();
        if let Some(o) = request.as_object_mut() {
            o.remove("clientToken");
        }
        // serde_json's maps are ordered by key: the same request prints the same.
        let fingerprint = request.to_string();
        let key = format!(
            "{PREFIX}{}/{}/{operation}/{}",
            ctx.account,
            ctx.region,
            escape(token)
        );
        let now = ecs.clock.now();
        let earlier = ecs
            .store
            .get(&key)
            .filter(|r| r.value["createdAt"].as_f64().unwrap_or(0.0) + LIFETIME_SECS > now);
        Some(ClientToken {
            key,
            fingerprint,
            earlier,
        })
    }

    pub(crate) fn earlier(&self) -> Earlier {
        match &self.earlier {
            None => Earlier::None,
            Some(r) if r.value["fingerprint"].as_str() == Some(&self.fingerprint) => {
                Earlier::Same(r.value["made"].clone())
            }
            Some(r) => Earlier::Different(r.value["made"].clone()),
        }
    }

    /// The condition and write that record this request as having made `made`, to go in
    /// the transaction that makes it. An expired record of the token is replaced.
    pub(crate) fn record(&self, ecs: &Ecs, made: Value) -> (Cond, Op) {
        ecs.sweep_expired_tokens();
        let cond = match ecs.store.get(&self.key) {
            Some(r) => Cond::Revision(self.key.clone(), r.revision),
            None => Cond::Absent(self.key.clone()),
        };
        let value = json!({
            "fingerprint": self.fingerprint,
            "made": made,
            "createdAt": ecs.clock.now(),
        });
        (cond, Op::Put(self.key.clone(), value))
    }
}

/// A token may hold `/`: keep it one key segment.
fn escape(token: &str) -> String {
    token.replace('%', "%25").replace('/', "%2F")
}

/// RunTask's answer to a different request with a token in use.
pub(crate) fn run_task_conflict(task_arns: &[String]) -> ApiError {
    ApiError::client(
        "ConflictException",
        format!(
            "The provided clientToken is already in use with a different RunTask request. The resourceIds are the existing task ARNs which are already associated with the clientToken: {}",
            task_arns.join(", ")
        ),
    )
}

impl Ecs {
    /// Once an hour, remove the token records older than their lifetime.
    fn sweep_expired_tokens(&self) {
        let now = self.clock.now();
        let hour = (now / 3600.0) as i64;
        if self.tokens_swept_hour.swap(hour, Ordering::Relaxed) == hour {
            return;
        }
        for r in self.store.list(PREFIX) {
            if r.value["createdAt"].as_f64().unwrap_or(0.0) + LIFETIME_SECS <= now {
                let _ = self.store.txn(
                    &[Cond::Revision(r.key.clone(), r.revision)],
                    vec![Op::Delete(r.key.clone())],
                );
            }
        }
    }

    /// Task records by ARN, as RunTask answered them (those since deleted are left out).
    pub(crate) fn tasks_by_arn(&self, arns: &[String]) -> Vec<Value> {
        arns.iter()
            .filter_map(|a| berth_model::ecs::TaskId::parse_arn(a))
            .filter_map(|t| self.store.get(&t.key()))
            .map(|r| (*r.value).clone())
            .collect()
    }
}

/// The ARNs in a record's `made.taskArns`.
pub(crate) fn task_arns(made: &Value) -> Vec<String> {
    made["taskArns"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
