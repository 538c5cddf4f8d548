//! berth-store: revisioned records plus watch. Every write is a transaction that commits
//! durably before it is acknowledged; every record carries the global revision of its last
//! write, so controllers can watch a prefix and compare-and-swap.
//!
//! The `Store` trait is what services and controllers see. `SqliteStore` keeps every
//! record in memory for reads and in SQLite (WAL, synchronous=FULL) for durability; a
//! PostgreSQL backend can implement the same trait.

pub mod migrate;
mod sqlite;

pub use sqlite::SqliteStore;

use serde_json::Value;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub value: Arc<Value>,
    /// Revision of the last write to this key.
    pub revision: i64,
    /// Revision at which the key was created.
    pub create_revision: i64,
}

/// A precondition for a transaction.
#[derive(Debug, Clone)]
pub enum Cond {
    /// The key does not exist.
    Absent(String),
    /// The key exists with exactly this revision.
    Revision(String, i64),
}

#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Value),
    Delete(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    pub revision: i64,
}

#[derive(Debug)]
pub enum StoreError {
    /// A condition did not hold; nothing was written.
    Conflict(String),
    /// The backend failed; nothing was written.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict(k) => write!(f, "conflict on {k}"),
            StoreError::Backend(e) => write!(f, "store backend error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub trait Store: Send + Sync {
    fn get(&self, key: &str) -> Option<Record>;
    /// Records whose key starts with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Vec<Record>;
    /// Visit records under `prefix` in key order (reverse order if `reverse`), starting
    /// after (or, reversed, before) the key `after`. `visit` returns whether it took the
    /// record; the scan stops once `limit` records were taken and returns how many were.
    /// Nothing is copied, so a page costs its size, not the prefix's.
    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        reverse: bool,
        limit: usize,
        visit: &mut dyn FnMut(&Record) -> bool,
    ) -> usize;
    /// Apply `ops` atomically if every condition holds; returns the new revision once the
    /// write is durable.
    fn txn(&self, conds: &[Cond], ops: Vec<Op>) -> Result<i64, StoreError>;
    /// Events for every committed write, in revision order. Receivers filter by prefix.
    fn watch(&self) -> tokio::sync::broadcast::Receiver<Event>;
    fn revision(&self) -> i64;

    fn put(&self, key: &str, value: Value) -> Result<i64, StoreError> {
        self.txn(&[], vec![Op::Put(key.to_string(), value)])
    }
    /// Create `key` only if it does not exist.
    fn create(&self, key: &str, value: Value) -> Result<i64, StoreError> {
        self.txn(
            &[Cond::Absent(key.to_string())],
            vec![Op::Put(key.to_string(), value)],
        )
    }
}

/// One attempt at a write: the conditions it relies on, the writes, and what to answer.
pub struct Plan<T> {
    pub conds: Vec<Cond>,
    pub ops: Vec<Op>,
    pub result: T,
}

impl<T> Plan<T> {
    /// A plan that writes nothing (yet) and answers `result`.
    pub fn new(result: T) -> Self {
        Plan {
            conds: vec![],
            ops: vec![],
            result,
        }
    }
    /// Rewrite `rec` with `value` on condition it is unchanged since read.
    pub fn put(&mut self, rec: &Record, value: Value) {
        self.conds
            .push(Cond::Revision(rec.key.clone(), rec.revision));
        self.ops.push(Op::Put(rec.key.clone(), value));
    }
    /// Delete `rec` on condition it is unchanged since read.
    pub fn delete(&mut self, rec: &Record) {
        self.conds
            .push(Cond::Revision(rec.key.clone(), rec.revision));
        self.ops.push(Op::Delete(rec.key.clone()));
    }
    /// Create `key`, which must not exist.
    pub fn create(&mut self, key: String, value: Value) {
        self.conds.push(Cond::Absent(key.clone()));
        self.ops.push(Op::Put(key, value));
    }
}

/// Run `attempt` (which reads the store and plans one transaction) until it commits. A
/// conflict means another writer got there first: re-read and plan again, every rule
/// re-checked, so the outcome is as if the requests ran one at a time. `failed` turns a
/// backend error, or (None) too many conflicts in a row, into the caller's error.
pub fn commit<T, E>(
    store: &dyn Store,
    mut attempt: impl FnMut() -> Result<Plan<T>, E>,
    failed: impl Fn(Option<StoreError>) -> E,
) -> Result<T, E> {
    for _ in 0..64 {
        let plan = attempt()?;
        if plan.ops.is_empty() {
            return Ok(plan.result);
        }
        match store.txn(&plan.conds, plan.ops) {
            Ok(_) => return Ok(plan.result),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(failed(Some(e))),
        }
    }
    Err(failed(None))
}
