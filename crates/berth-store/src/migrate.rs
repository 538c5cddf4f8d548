//! Versioned migrations of stored records. The store's schema version is a record of its
//! own; each step moves the records from one version to the next and commits its writes
//! together with the new version, in one transaction, so a crash leaves either the old
//! version with the old records or the new with the new. A store written by a newer
//! Berth (a higher version than any step knows) is refused rather than misread.

use crate::{Cond, Op, Store, StoreError};
use serde_json::json;

/// Where the schema version lives: outside every account's keys.
pub const SCHEMA_KEY: &str = "/_berth/schema";

/// A step's writes and the conditions they depend on.
pub type StepWrites = Result<(Vec<Cond>, Vec<Op>), String>;

/// One step: from `to - 1` to `to`.
pub struct Migration {
    pub to: u32,
    pub what: &'static str,
    /// Reads the store and returns the writes that bring it to `to` (with the
    /// conditions they depend on); the runner adds the version bump to the same commit.
    pub plan: fn(&dyn Store) -> StepWrites,
}

/// The version a store is at: 0 for a data directory from before versions.
pub fn version(store: &dyn Store) -> u32 {
    store
        .get(SCHEMA_KEY)
        .and_then(|r| r.value.get("version")?.as_u64())
        .map_or(0, |v| v as u32)
}

/// Runs the steps the store has not had, in order. Returns (from, to).
pub fn migrate(store: &dyn Store, steps: &[Migration]) -> Result<(u32, u32), String> {
    let newest = steps.last().map_or(0, |s| s.to);
    let from = version(store);
    if from > newest {
        return Err(format!(
            "this data directory was written by a newer Berth (schema version {from}; this Berth knows up to {newest}): use that Berth or a newer one"
        ));
    }
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s.to as usize, i + 1, "migrations are numbered 1, 2, 3, ...");
    }
    let mut at = from;
    for step in steps.iter().filter(|s| s.to > from) {
        let (mut conds, mut ops) = (step.plan)(store).map_err(|e| {
            format!(
                "migration to schema {} ({}) failed: {e}",
                step.to, step.what
            )
        })?;
        conds.push(match store.get(SCHEMA_KEY) {
            Some(r) => Cond::Revision(SCHEMA_KEY.to_string(), r.revision),
            None => Cond::Absent(SCHEMA_KEY.to_string()),
        });
        ops.push(Op::Put(
            SCHEMA_KEY.to_string(),
            json!({"version": step.to, "migration": step.what}),
        ));
        store.txn(&conds, ops).map_err(|e| match e {
            StoreError::Conflict(k) => format!(
                "migration to schema {} ({}): {k} changed while it ran; nothing was written",
                step.to, step.what
            ),
            StoreError::Backend(e) => format!("migration to schema {}: {e}", step.to),
        })?;
        at = step.to;
    }
    Ok((from, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("s.db")).unwrap();
        (d, s)
    }

    fn rename_kind(store: &dyn Store) -> StepWrites {
        let mut conds = vec![];
        let mut ops = vec![];
        for r in store.list("/a/old/") {
            conds.push(Cond::Revision(r.key.clone(), r.revision));
            ops.push(Op::Delete(r.key.clone()));
            ops.push(Op::Put(r.key.replace("/old/", "/new/"), (*r.value).clone()));
        }
        Ok((conds, ops))
    }

    fn fail(_: &dyn Store) -> StepWrites {
        Err("no".into())
    }

    fn steps() -> Vec<Migration> {
        vec![
            Migration {
                to: 1,
                what: "stamp",
                plan: |_| Ok((vec![], vec![])),
            },
            Migration {
                to: 2,
                what: "rename",
                plan: rename_kind,
            },
        ]
    }

    #[test]
    fn an_unversioned_store_is_brought_up_step_by_step_and_once() {
        let (_d, s) = store();
        s.put("/a/old/x", json!({"v": 1})).unwrap();
        assert_eq!(version(&s), 0);
        assert_eq!(migrate(&s, &steps()).unwrap(), (0, 2));
        assert!(s.get("/a/old/x").is_none());
        assert_eq!(s.get("/a/new/x").unwrap().value["v"], 1);
        assert_eq!(version(&s), 2);
        // Again: nothing to do, nothing written.
        let rev = s.revision();
        assert_eq!(migrate(&s, &steps()).unwrap(), (2, 2));
        assert_eq!(s.revision(), rev);
    }

    #[test]
    fn a_newer_store_is_refused_and_a_failed_step_writes_nothing() {
        let (_d, s) = store();
        s.put(SCHEMA_KEY, json!({"version": 9})).unwrap();
        let e = migrate(&s, &steps()).unwrap_err();
        assert!(
            e.contains("newer Berth (schema version 9; this Berth knows up to 2)"),
            "{e}"
        );

        let (_d, s) = store();
        s.put("/a/old/x", json!({"v": 1})).unwrap();
        let bad = vec![
            Migration {
                to: 1,
                what: "stamp",
                plan: |_| Ok((vec![], vec![])),
            },
            Migration {
                to: 2,
                what: "broken",
                plan: fail,
            },
        ];
        assert!(migrate(&s, &bad).unwrap_err().contains("(broken) failed"));
        assert_eq!(version(&s), 1, "the first step stays done");
        assert!(s.get("/a/old/x").is_some());
    }
}
