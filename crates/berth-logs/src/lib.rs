//! berth-logs: the Amazon CloudWatch Logs API. Log groups and streams (names, ARNs,
//! retention, tags) are records in the revisioned store; log events are not: they live in
//! append-only segment files (`segments`), which the task supervisors append to directly.

mod common;
mod events;
pub mod filter;
mod groups;
pub mod segments;
mod streams;

/// Every operation's input and output, generated from the model by `tools/gen-types.py`.
/// `compile_fail.rs` (tests/compile_fail/logs_types.sh) shows a handler cannot read a
/// member the model lacks, nor take a required member as an Option, nor leave one out.
pub use berth_types::logs as types;

#[cfg(feature = "compile-fail-typed")]
mod compile_fail;

use berth_store::{Cond, Op, Store, StoreError};
use berth_wire::model::LazyModel;
use berth_wire::{ApiError, ApiResult, Clock, Model, RequestContext, Service, ValidationCodes};
use common::*;
use segments::{EventStore, FsEventStore, StreamRef};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

static MODEL: LazyModel = LazyModel::new(include_bytes!("../../berth-wire/models/logs.json.gz"));

/// How often closed segments past their group's retention are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

pub fn model() -> &'static Model {
    MODEL.get()
}

pub struct Logs {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
    pub(crate) events: Arc<dyn EventStore>,
    /// Serialises creating and deleting groups and streams (rare), so a name's old data is
    /// cleared before its new record exists and never after.
    meta: Mutex<()>,
    /// The retention sweeper stops once this is dropped.
    _alive: Arc<()>,
}

impl Logs {
    /// Events under `root` (`DATA/logs`), metadata in `store`. Starts a background thread
    /// that deletes closed segments older than their group's retention, hourly.
    pub fn new(store: Arc<dyn Store>, clock: Clock, root: PathBuf) -> Self {
        Self::with_event_store(store, clock, Arc::new(FsEventStore::new(root)))
    }

    pub fn with_event_store(
        store: Arc<dyn Store>,
        clock: Clock,
        events: Arc<dyn EventStore>,
    ) -> Self {
        let alive = Arc::new(());
        let weak = Arc::downgrade(&alive);
        let (s, e, c) = (store.clone(), events.clone(), clock.clone());
        let spawned = std::thread::Builder::new()
            .name("logs-retention".into())
            .spawn(move || loop {
                std::thread::sleep(SWEEP_EVERY);
                if weak.upgrade().is_none() {
                    return;
                }
                let n = sweep(s.as_ref(), e.as_ref(), now_ms(&c));
                if n > 0 {
                    tracing::info!(segments = n, "logs: deleted segments past retention");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "logs: retention sweeper not started");
        }
        Logs {
            store,
            clock,
            events,
            meta: Mutex::new(()),
            _alive: alive,
        }
    }

    pub(crate) fn lock_meta(&self) -> MutexGuard<'_, ()> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now_ms(&self) -> i64 {
        now_ms(&self.clock)
    }

    /// Delete closed segments whose events are all past their group's retention now;
    /// returns how many were deleted. (The background thread does this hourly.)
    pub fn sweep_retention(&self) -> usize {
        sweep(self.store.as_ref(), self.events.as_ref(), self.now_ms())
    }

    /// Make sure the stream exists (and the group, if `create_group`), returning the
    /// stream's segment directory.
    /// Errors: ResourceNotFoundException if the group is missing and !create_group.
    pub fn ensure_stream(
        &self,
        account: &str,
        region: &str,
        group: &str,
        stream: &str,
        create_group: bool,
    ) -> ApiResult<PathBuf> {
        check_group_name(group, "logGroupName")?;
        check_stream_name(stream, "logStreamName")?;
        let s = StreamRef {
            account,
            region,
            group,
            stream,
        };
        let dir = self
            .events
            .local_dir(&s)
            .ok_or_else(|| ApiError::internal("the log event store has no local directory"))?;
        let _guard = self.lock_meta();
        let gk = group_key(account, region, group);
        if self.store.get(&gk).is_none() {
            if !create_group {
                return Err(group_not_found());
            }
            self.events
                .delete_group(account, region, group)
                .map_err(io_err)?;
            let record = groups::new_group_record(group, self.now_ms(), None);
            match self.store.create(&gk, record) {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(store_err(e)),
            }
        }
        let group_rev = self.store.get(&gk).ok_or_else(group_not_found)?.revision;
        let sk = stream_key(account, region, group, stream);
        if self.store.get(&sk).is_none() {
            self.events.create_stream(&s).map_err(io_err)?;
            let record = json!({
                "logGroupName": group,
                "logStreamName": stream,
                "creationTime": self.now_ms(),
            });
            match self.store.txn(
                &[Cond::Revision(gk, group_rev), Cond::Absent(sk.clone())],
                vec![Op::Put(sk.clone(), record)],
            ) {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) if self.store.get(&sk).is_some() => {}
                Err(StoreError::Conflict(_)) => return Err(group_not_found()),
                Err(e) => return Err(store_err(e)),
            }
        } else {
            std::fs::create_dir_all(&dir).map_err(io_err)?;
        }
        Ok(dir)
    }
}

/// Expire segments of every group that has a retention policy.
fn sweep(store: &dyn Store, events: &dyn EventStore, now: i64) -> usize {
    let mut groups: Vec<(String, String, String, i64)> = vec![];
    store.scan("/", None, false, usize::MAX, &mut |r| {
        let mut parts = r.key.splitn(6, '/');
        let (Some(""), Some(account), Some(region), Some("logs"), Some("group"), Some(name)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return false;
        };
        if let Some(days) = r.value.get("retentionInDays").and_then(Value::as_i64) {
            groups.push((account.into(), region.into(), name.into(), days));
        }
        false
    });
    let mut deleted = 0;
    for (account, region, group, days) in groups {
        let cutoff = now - days * 86_400_000;
        for r in store.list(&stream_prefix(&account, &region, &group)) {
            let Some(stream) = r.value.get("logStreamName").and_then(Value::as_str) else {
                continue;
            };
            let s = StreamRef {
                account: &account,
                region: &region,
                group: &group,
                stream,
            };
            match events.expire(&s, cutoff) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(group = %group, stream = %stream, error = %e, "logs: retention sweep failed")
                }
            }
        }
    }
    deleted
}

impl Service for Logs {
    fn model(&self) -> &'static Model {
        model()
    }

    fn metadata(&self) -> &'static berth_wire::model::Metadata {
        MODEL.metadata()
    }

    fn codes(&self) -> ValidationCodes {
        ValidationCodes::json(INVALID, "SerializationException")
    }

    fn call(&self, ctx: &RequestContext, operation: &str, input: Value) -> ApiResult<Value> {
        use types::op;
        berth_wire::dispatch!(operation, input, self.codes(), op {
            CreateLogGroup => |i| self.create_log_group(ctx, i),
            DeleteLogGroup => |i| self.delete_log_group(ctx, i),
            DescribeLogGroups => |i| self.describe_log_groups(ctx, i),
            PutRetentionPolicy => |i| self.put_retention_policy(ctx, i),
            DeleteRetentionPolicy => |i| self.delete_retention_policy(ctx, i),

            TagResource => |i| self.tag_resource(ctx, i),
            UntagResource => |i| self.untag_resource(ctx, i),
            ListTagsForResource => |i| self.list_tags_for_resource(ctx, i),
            TagLogGroup => |i| self.tag_log_group(ctx, i),
            UntagLogGroup => |i| self.untag_log_group(ctx, i),
            ListTagsLogGroup => |i| self.list_tags_log_group(ctx, i),

            CreateLogStream => |i| self.create_log_stream(ctx, i),
            DeleteLogStream => |i| self.delete_log_stream(ctx, i),
            DescribeLogStreams => |i| self.describe_log_streams(ctx, i),

            PutLogEvents => |i| self.put_log_events(ctx, i),
            GetLogEvents => |i| self.get_log_events(ctx, i),
            FilterLogEvents => |i| self.filter_log_events(ctx, i),
        } else Err(ApiError::not_implemented("logs", operation)))
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub struct Fixture {
        pub logs: Logs,
        pub ctx: RequestContext,
        pub root: PathBuf,
        _dir: tempfile::TempDir,
    }

    pub fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(berth_store::SqliteStore::open(&dir.path().join("db")).unwrap());
        let root = dir.path().join("logs");
        Fixture {
            logs: Logs::new(store, Clock::default(), root.clone()),
            ctx: RequestContext {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                request_id: "test".into(),
            },
            root,
            _dir: dir,
        }
    }

    impl Fixture {
        /// Call an operation the way the edge does: validated against the model first.
        pub fn call(&self, op: &str, input: Value) -> ApiResult<Value> {
            let m = model();
            let shape = m.operations[op].input.as_deref().unwrap();
            berth_wire::validate::validate(m, m.shape(shape), &input, self.logs.codes())?;
            let mut out = self.logs.call(&self.ctx, op, input)?;
            // As the wire layer does: AWS never sends null members.
            berth_wire::service::strip_nulls(&mut out);
            Ok(out)
        }
        pub fn ok(&self, op: &str, input: Value) -> Value {
            self.call(op, input)
                .unwrap_or_else(|e| panic!("{op} failed: {e}"))
        }
        pub fn err(&self, op: &str, input: Value) -> ApiError {
            match self.call(op, input) {
                Ok(v) => panic!("{op} succeeded: {v}"),
                Err(e) => e,
            }
        }
        pub fn now(&self) -> i64 {
            self.logs.now_ms()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn every_model_operation_answers() {
        let f = fixture();
        for op in model().operations.keys() {
            if let Err(e) = f.logs.call(&f.ctx, op, json!({})) {
                assert!(e.status < 500 || e.code == "NotImplemented", "{op}: {e}");
            }
        }
    }

    #[test]
    fn types_follow_the_model() {
        use types::*;
        // Required members are plain fields, optional ones Options (compile_fail.rs
        // shows the other side).
        let typed = CreateLogGroupRequest {
            deletion_protection_enabled: None,
            kms_key_id: None,
            log_group_class: Some(LogGroupClass::InfrequentAccess),
            log_group_name: "g".to_string(),
            tags: None,
        };
        let name: &String = &typed.log_group_name;
        let class: Option<LogGroupClass> = typed.log_group_class;
        assert_eq!(
            (name.as_str(), class.map(LogGroupClass::as_str)),
            ("g", Some("INFREQUENT_ACCESS"))
        );
        // A member the model lacks passes validation (JSON services' validator skips
        // unknown members) and is refused by the type: a 400 naming it, nothing written.
        let f = fixture();
        let e = f.err(
            "CreateLogGroup",
            json!({"logGroupName": "g", "logGroupNmae": "typo"}),
        );
        assert_eq!((e.status, e.code.as_str()), (400, "SerializationException"));
        assert!(e.message.contains("logGroupNmae"), "{}", e.message);
        assert!(f.ok("DescribeLogGroups", json!({}))["logGroups"] == json!([]));
        // Also inside nested structures.
        f.ok("CreateLogGroup", json!({"logGroupName": "g"}));
        f.ok(
            "CreateLogStream",
            json!({"logGroupName": "g", "logStreamName": "s"}),
        );
        let e = f.err(
            "PutLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s",
                   "logEvents": [{"timestamp": f.now(), "message": "m", "level": "x"}]}),
        );
        assert_eq!(e.code, "SerializationException");
        // Outputs are what the handlers always wrote: no nulls, empty lists kept.
        let out = f.ok(
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s"}),
        );
        assert_eq!(out["events"], json!([]));
        assert_eq!(out.as_object().unwrap().len(), 3);
    }

    #[test]
    fn ensure_stream_creates_what_is_missing() {
        let f = fixture();
        let e = f
            .logs
            .ensure_stream("000000000000", "us-east-1", "/ecs/web", "web/app/1", false)
            .unwrap_err();
        assert_eq!(e.code, "ResourceNotFoundException");
        let dir = f
            .logs
            .ensure_stream("000000000000", "us-east-1", "/ecs/web", "web/app/1", true)
            .unwrap();
        assert!(dir.is_dir() && dir.starts_with(&f.root));
        // Idempotent, and the supervisor's appends are what GetLogEvents reads.
        let again = f
            .logs
            .ensure_stream("000000000000", "us-east-1", "/ecs/web", "web/app/1", false)
            .unwrap();
        assert_eq!(dir, again);
        let mut a = segments::StreamAppender::open(&dir).unwrap();
        a.append(f.now(), "hello from a container").unwrap();
        a.sync().unwrap();
        let out = f.ok(
            "GetLogEvents",
            json!({"logGroupName": "/ecs/web", "logStreamName": "web/app/1"}),
        );
        assert_eq!(out["events"][0]["message"], "hello from a container");
        let groups = f.ok("DescribeLogGroups", json!({}));
        assert_eq!(groups["logGroups"][0]["logGroupName"], "/ecs/web");
        assert!(f
            .logs
            .ensure_stream("000000000000", "us-east-1", "/ecs/web", "bad:name", false)
            .is_err());
    }
}
