use crate::{Cond, Event, EventKind, Op, Record, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

/// Schema migrations, applied in order; the index is the schema version.
const MIGRATIONS: &[&str] = &["CREATE TABLE records (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        revision INTEGER NOT NULL,
        create_revision INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (name, value) VALUES ('revision', 0);"];

pub struct SqliteStore {
    /// The single writer. Reads never touch it.
    conn: Mutex<Connection>,
    /// Every record, for lock-light reads. Updated only after a durable commit.
    cache: RwLock<Cache>,
    events: broadcast::Sender<Event>,
}

struct Cache {
    records: BTreeMap<String, Record>,
    revision: i64,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )
        .map_err(backend)?;
        migrate(&conn)?;
        let revision: i64 = conn
            .query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| {
                r.get(0)
            })
            .map_err(backend)?;
        let mut records = BTreeMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT key, value, revision, create_revision FROM records")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(backend)?;
            for row in rows {
                let (key, text, revision, create_revision) = row.map_err(backend)?;
                let value: Value =
                    serde_json::from_str(&text).map_err(|e| StoreError::Backend(e.to_string()))?;
                records.insert(
                    key.clone(),
                    Record {
                        key,
                        value: Arc::new(value),
                        revision,
                        create_revision,
                    },
                );
            }
        }
        let (events, _) = broadcast::channel(4096);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            cache: RwLock::new(Cache { records, revision }),
            events,
        })
    }
}

/// The smallest string greater than every string starting with `prefix`, if any.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars = prefix.to_string();
    while let Some(c) = chars.pop() {
        // The character after U+D7FF is U+E000 (the surrogates are not characters).
        let next = match c {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars);
        }
    }
    None
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(backend)?;
    let current: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()
        .map_err(backend)?
        .unwrap_or(0);
    if current as usize > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the data directory has schema version {current}, newer than this berth ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.unchecked_transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute("DELETE FROM schema_version", [])
            .map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![i as i64 + 1],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn get(&self, key: &str) -> Option<Record> {
        self.cache
            .read()
            .expect("cache lock")
            .records
            .get(key)
            .cloned()
    }

    fn list(&self, prefix: &str) -> Vec<Record> {
        let cache = self.cache.read().expect("cache lock");
        cache
            .records
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        reverse: bool,
        limit: usize,
        visit: &mut dyn FnMut(&Record) -> bool,
    ) -> usize {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let cache = self.cache.read().expect("cache lock");
        let mut taken = 0;
        let mut step = |r: &Record| {
            if visit(r) {
                taken += 1;
            }
            taken < limit
        };
        // Bounds borrow their strings: a scan allocates only the prefix's end.
        let end = prefix_end(prefix);
        let prefix_hi = end.as_deref().map_or(Unbounded, Excluded);
        let range = if reverse {
            let hi = match after {
                Some(a) => Excluded(a),
                None => prefix_hi,
            };
            (Included(prefix), hi)
        } else {
            let lo = match after {
                Some(a) if a >= prefix => Excluded(a),
                _ => Included(prefix),
            };
            // Bounded on both sides, the range holds only the prefix's keys: no key is
            // compared again while iterating.
            (lo, prefix_hi)
        };
        let empty = match range {
            (Included(a) | Excluded(a), Excluded(h)) => a > h || (a == h && !reverse),
            _ => false,
        };
        if empty {
            return 0;
        }
        let records = cache.records.range::<str, _>(range);
        if reverse {
            for (_, r) in records.rev() {
                if !step(r) {
                    break;
                }
            }
        } else {
            for (_, r) in records {
                if !step(r) {
                    break;
                }
            }
        }
        taken
    }

    fn txn(&self, conds: &[Cond], ops: Vec<Op>) -> Result<i64, StoreError> {
        // The writer lock serialises transactions; conditions are checked under it.
        let mut conn = self.conn.lock().expect("writer lock");
        {
            let cache = self.cache.read().expect("cache lock");
            for c in conds {
                match c {
                    Cond::Absent(k) if cache.records.contains_key(k) => {
                        return Err(StoreError::Conflict(k.clone()))
                    }
                    Cond::Revision(k, rev)
                        if cache.records.get(k).map(|r| r.revision) != Some(*rev) =>
                    {
                        return Err(StoreError::Conflict(k.clone()))
                    }
                    _ => {}
                }
            }
        }
        let revision = self.cache.read().expect("cache lock").revision + 1;
        let mut staged: Vec<(String, Option<Record>)> = Vec::with_capacity(ops.len());
        {
            let tx = conn.transaction().map_err(backend)?;
            for op in ops {
                match op {
                    Op::Put(key, value) => {
                        let text = serde_json::to_string(&value)
                            .map_err(|e| StoreError::Backend(e.to_string()))?;
                        let create_revision = staged
                            .iter()
                            .rev()
                            .find(|(k, _)| *k == key)
                            .and_then(|(_, r)| r.as_ref().map(|r| r.create_revision))
                            .or_else(|| {
                                self.cache
                                    .read()
                                    .expect("cache lock")
                                    .records
                                    .get(&key)
                                    .map(|r| r.create_revision)
                            })
                            .unwrap_or(revision);
                        tx.execute(
                            "INSERT INTO records (key, value, revision, create_revision) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT(key) DO UPDATE SET value = excluded.value, revision = excluded.revision",
                            params![key, text, revision, create_revision],
                        )
                        .map_err(backend)?;
                        staged.push((
                            key.clone(),
                            Some(Record {
                                key,
                                value: Arc::new(value),
                                revision,
                                create_revision,
                            }),
                        ));
                    }
                    Op::Delete(key) => {
                        tx.execute("DELETE FROM records WHERE key = ?1", params![key])
                            .map_err(backend)?;
                        staged.push((key, None));
                    }
                }
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'revision'",
                params![revision],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
        }
        // Durable now: publish to readers, then to watchers.
        let mut events = Vec::with_capacity(staged.len());
        {
            let mut cache = self.cache.write().expect("cache lock");
            cache.revision = revision;
            for (key, rec) in staged {
                match rec {
                    Some(r) => {
                        cache.records.insert(key.clone(), r);
                        events.push(Event {
                            kind: EventKind::Put,
                            key,
                            revision,
                        });
                    }
                    None => {
                        if cache.records.remove(&key).is_some() {
                            events.push(Event {
                                kind: EventKind::Delete,
                                key,
                                revision,
                            });
                        }
                    }
                }
            }
        }
        drop(conn);
        for e in events {
            let _ = self.events.send(e);
        }
        Ok(revision)
    }

    fn watch(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn revision(&self) -> i64 {
        self.cache.read().expect("cache lock").revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_survive_reopen_and_revisions_grow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            assert_eq!(s.create("/a/1", json!({"n": 1})).unwrap(), 1);
            assert_eq!(s.put("/a/2", json!({"n": 2})).unwrap(), 2);
            assert_eq!(s.put("/a/1", json!({"n": 3})).unwrap(), 3);
            assert!(matches!(
                s.create("/a/1", json!({})),
                Err(StoreError::Conflict(_))
            ));
            s.txn(&[], vec![Op::Delete("/a/2".into())]).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.revision(), 4);
        let a1 = s.get("/a/1").unwrap();
        assert_eq!(a1.value["n"], 3);
        assert_eq!(a1.revision, 3);
        assert_eq!(a1.create_revision, 1);
        assert!(s.get("/a/2").is_none());
    }

    #[test]
    fn failed_condition_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        s.put("/k", json!(1)).unwrap();
        let err = s.txn(
            &[Cond::Revision("/k".into(), 99)],
            vec![Op::Put("/other".into(), json!(2))],
        );
        assert!(matches!(err, Err(StoreError::Conflict(_))));
        assert!(s.get("/other").is_none());
        assert_eq!(s.revision(), 1);
    }

    #[test]
    fn list_is_prefix_bounded_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        for k in ["/b/2", "/a/1", "/b/1", "/c"] {
            s.put(k, json!(k)).unwrap();
        }
        let keys: Vec<_> = s.list("/b/").into_iter().map(|r| r.key).collect();
        assert_eq!(keys, vec!["/b/1", "/b/2"]);
    }

    #[test]
    fn prefix_ends_bound_exactly_the_prefixed_keys() {
        assert_eq!(prefix_end("/a/").as_deref(), Some("/a0"));
        assert_eq!(prefix_end("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        assert_eq!(prefix_end("x\u{10FFFF}").as_deref(), Some("y"));
        assert_eq!(prefix_end(""), None);
    }

    #[test]
    fn scan_pages_forward_and_backward() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        for k in ["/a/1", "/a/2", "/a/3", "/a/4", "/b/1", "/a0"] {
            s.put(k, json!({"odd": k.ends_with('1') || k.ends_with('3')}))
                .unwrap();
        }
        let keys = |after: Option<&str>, reverse: bool, limit: usize, odd_only: bool| {
            let mut out = vec![];
            let n = s.scan("/a/", after, reverse, limit, &mut |r| {
                if odd_only && r.value["odd"] != true {
                    return false;
                }
                out.push(r.key.clone());
                true
            });
            assert_eq!(n, out.len());
            out
        };
        assert_eq!(keys(None, false, 2, false), ["/a/1", "/a/2"]);
        assert_eq!(keys(Some("/a/2"), false, 10, false), ["/a/3", "/a/4"]);
        assert_eq!(keys(None, true, 3, false), ["/a/4", "/a/3", "/a/2"]);
        assert_eq!(keys(Some("/a/2"), true, 10, false), ["/a/1"]);
        assert_eq!(keys(None, false, 10, true), ["/a/1", "/a/3"]);
    }

    #[test]
    fn watchers_see_committed_writes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        let mut rx = s.watch();
        s.put("/x", json!(1)).unwrap();
        s.txn(&[], vec![Op::Delete("/x".into())]).unwrap();
        let e1 = rx.try_recv().unwrap();
        let e2 = rx.try_recv().unwrap();
        assert_eq!((e1.kind, e1.revision), (EventKind::Put, 1));
        assert_eq!((e2.kind, e2.revision), (EventKind::Delete, 2));
    }
}
