//! Garbage collection of blobs, safe against concurrent pushes.
//!
//! What is live:
//! - A repository's **membership** of a blob (`.../ecr/blob/{repo}/{digest}`) is live while
//!   an image of that repository is that digest or references it (config, layers, child
//!   manifests of an index). An unreferenced membership is first marked with
//!   `unreferencedSince` and removed once it has stayed unreferenced for the grace period,
//!   so a push whose manifest is not yet put keeps its layers, and so does a push that
//!   found a blob already present just before the last image using it was deleted.
//!   Adding the blob again (upload, mount) or putting a manifest that uses it clears the mark.
//! - A blob **file** is live while any image of any repository is it or references it,
//!   while any membership of it remains, or while it was written or reused (upload commit,
//!   manifest put) less than the grace period ago.
//!
//! Races: `Registry::put_manifest` rewrites the memberships it relies on under revision
//! conditions, and the collector removes memberships under revision conditions, so one of
//! two racing transactions fails and the push retries (then finds the blob gone and says
//! `MANIFEST_BLOB_UNKNOWN`) instead of committing a manifest whose blobs are gone. Dead
//! files are first moved aside, then everything is checked again (new images, new
//! memberships, a write or reuse the move carried along); what turned live is put back,
//! the rest deleted.

use crate::{Digest, Registry, RegistryError};
use berth_store::{Cond, Op, Record, StoreError};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Member of a membership record: when the collector first found it unreferenced.
pub const UNREFERENCED_SINCE: &str = "unreferencedSince";

/// Default grace period: one hour.
pub const DEFAULT_GRACE_SECS: f64 = 3600.0;

/// What one collection did.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    /// Blob files removed.
    pub blobs_removed: Vec<Digest>,
    /// Membership records removed.
    pub memberships_removed: usize,
    /// Membership records newly marked unreferenced.
    pub memberships_marked: usize,
}

/// `/{account}/{region}/ecr/{kind}/{repo}/{digest}` split into (`/{account}/{region}/ecr`, repo, digest).
fn split_key<'a>(key: &'a str, kind: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let rest = key.strip_prefix('/')?;
    let mut parts = rest.splitn(4, '/');
    let (account, region, service) = (parts.next()?, parts.next()?, parts.next()?);
    if service != "ecr" {
        return None;
    }
    let tail = parts.next()?.strip_prefix(kind)?.strip_prefix('/')?;
    let (repo, digest) = tail.rsplit_once('/')?;
    let scope_len = 1 + account.len() + 1 + region.len() + 1 + service.len();
    Some((&key[..scope_len], repo, digest))
}

/// Digests a stored manifest references: config, layers, child manifests.
fn references(bytes: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return vec![];
    };
    let mut out = vec![];
    if let Some(d) = v.pointer("/config/digest").and_then(Value::as_str) {
        out.push(d.to_string());
    }
    for list in ["layers", "manifests"] {
        for item in v.get(list).and_then(Value::as_array).into_iter().flatten() {
            if let Some(d) = item.get("digest").and_then(Value::as_str) {
                out.push(d.to_string());
            }
        }
    }
    out
}

/// Everything images keep alive: (scope, repo, digest) triples and the digests alone.
struct Live {
    in_repo: HashSet<(String, String, String)>,
    anywhere: HashSet<String>,
}

fn live_set(reg: &Registry, records: &[Record], cache: &mut HashMap<String, Vec<String>>) -> Live {
    let mut live = Live {
        in_repo: HashSet::new(),
        anywhere: HashSet::new(),
    };
    for r in records {
        let Some((scope, repo, digest)) = split_key(&r.key, "image") else {
            continue;
        };
        let refs = cache.entry(digest.to_string()).or_insert_with(|| {
            Digest::parse(digest)
                .and_then(|d| reg.blobs.read(&d).ok())
                .map(|b| references(&b))
                .unwrap_or_default()
        });
        for d in std::iter::once(digest.to_string()).chain(refs.iter().cloned()) {
            live.in_repo
                .insert((scope.to_string(), repo.to_string(), d.clone()));
            live.anywhere.insert(d);
        }
    }
    live
}

/// Apply `ops` (each guarded by its condition) in one transaction, or one by one when a
/// condition fails, skipping those whose record changed meanwhile. Returns how many applied.
fn apply(reg: &Registry, guarded: Vec<(Cond, Op)>) -> Result<usize, RegistryError> {
    if guarded.is_empty() {
        return Ok(0);
    }
    let (conds, ops): (Vec<Cond>, Vec<Op>) = guarded.iter().cloned().unzip();
    match reg.store.txn(&conds, ops) {
        Ok(_) => return Ok(guarded.len()),
        Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut n = 0;
    for (c, op) in guarded {
        match reg.store.txn(&[c], vec![op]) {
            Ok(_) => n += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// How many blobs set aside are checked and removed under one hold of
/// `Registry::blob_writes`: few enough that a push waits briefly, many enough that the
/// live set is not recomputed for every blob.
const FINAL_CHECK_BATCH: usize = 32;

/// Collect garbage once: mark, then after `grace_secs` (by the registry's clock) remove,
/// unreferenced memberships; remove blob files nothing keeps alive. A grace of 0 removes
/// at once whatever no manifest references, even the blobs of a push in progress.
pub fn collect(reg: &Registry, grace_secs: f64) -> Result<GcReport, RegistryError> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = GcReport::default();
    let mut cache = HashMap::new();
    let now = reg.clock.now();

    // Memberships.
    let records = reg.store.list("/");
    let live = live_set(reg, &records, &mut cache);
    let mut guarded = vec![];
    let mut removed_keys = HashSet::new();
    for r in &records {
        let Some((scope, repo, digest)) = split_key(&r.key, "blob") else {
            continue;
        };
        let since = r.value.get(UNREFERENCED_SINCE).and_then(Value::as_f64);
        let cond = Cond::Revision(r.key.clone(), r.revision);
        if live
            .in_repo
            .contains(&(scope.to_string(), repo.to_string(), digest.to_string()))
        {
            if since.is_some() {
                let mut v = (*r.value).clone();
                v.as_object_mut().map(|o| o.remove(UNREFERENCED_SINCE));
                guarded.push((cond, Op::Put(r.key.clone(), v)));
            }
        } else if now - since.unwrap_or(now) >= grace_secs {
            guarded.push((cond, Op::Delete(r.key.clone())));
            removed_keys.insert(r.key.clone());
        } else if since.is_none() {
            let mut v = (*r.value).clone();
            v[UNREFERENCED_SINCE] = json!(now);
            guarded.push((cond, Op::Put(r.key.clone(), v)));
            report.memberships_marked += 1;
        }
    }
    apply(reg, guarded)?;

    // Files: set aside what nothing keeps alive...
    let members = |records: &[Record]| -> HashSet<String> {
        records
            .iter()
            .filter_map(|r| split_key(&r.key, "blob"))
            .map(|(_, _, d)| d.to_string())
            .collect()
    };
    let records = reg.store.list("/");
    report.memberships_removed = removed_keys
        .iter()
        .filter(|k| reg.store.get(k).is_none())
        .count();
    let member_digests = members(&records);
    // (File times are the filesystem's, finer than the clock's milliseconds; a grace of 0
    // keeps nothing for its age.)
    let recent = |written: f64| grace_secs > 0.0 && now - written < grace_secs;
    let mut aside = vec![];
    for (d, written) in reg.blobs.list() {
        let s = d.to_string();
        if live.anywhere.contains(&s) || member_digests.contains(&s) || recent(written) {
            continue;
        }
        if reg.blobs.quarantine(&d).is_ok() {
            aside.push(d);
        }
    }
    if aside.is_empty() {
        return Ok(report);
    }
    // ...then check again: images or memberships that appeared meanwhile, or a write or
    // reuse that reached the file before it moved, put it back. No write that makes a
    // blob live runs between a batch's check and its last deletion; between batches,
    // pushes go on (a bucket's checks and deletions are requests, many of them).
    let mut failure = None;
    for batch in aside.chunks(FINAL_CHECK_BATCH) {
        let no_writes = reg.blob_writes.write();
        let records = reg.store.list("/");
        let live = live_set(reg, &records, &mut cache);
        let member_digests = members(&records);
        for d in batch {
            if failure.is_some() {
                // Stopped: what is still aside goes back, so nothing unreferenced-but-
                // unchecked is lost and nothing stays unreadable.
                let _ = reg.blobs.restore(d);
                continue;
            }
            let s = d.to_string();
            let keep = live.anywhere.contains(&s)
                || member_digests.contains(&s)
                || reg.blobs.quarantined_at(d).is_some_and(recent);
            let done = if keep {
                reg.blobs.restore(d)
            } else {
                reg.blobs
                    .purge(d)
                    .map(|()| report.blobs_removed.push(d.clone()))
            };
            if let Err(e) = done {
                let _ = reg.blobs.restore(d);
                failure = Some(e);
            }
        }
        // Fair: the writes that queued up during this batch go before the next one.
        parking_lot::RwLockWriteGuard::unlock_fair(no_writes);
    }
    if let Some(e) = failure {
        return Err(RegistryError::internal(e));
    }
    if !report.blobs_removed.is_empty() || report.memberships_removed > 0 {
        tracing::info!(
            blobs = report.blobs_removed.len(),
            memberships = report.memberships_removed,
            "registry garbage collected"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlobStore, FsBlobs, Scope};
    use berth_store::{Event, SqliteStore, Store};
    use berth_wire::Clock;
    use std::sync::Arc;

    type Hook = (fn(&[Op]) -> bool, Box<dyn FnOnce() + Send>);

    /// A store that runs a hook just before the first transaction its predicate picks,
    /// to interleave a push and a collection deterministically.
    struct HookStore {
        inner: SqliteStore,
        hook: Mutex<Option<Hook>>,
    }

    impl Store for HookStore {
        fn get(&self, key: &str) -> Option<Record> {
            self.inner.get(key)
        }
        fn list(&self, prefix: &str) -> Vec<Record> {
            self.inner.list(prefix)
        }
        fn scan(
            &self,
            prefix: &str,
            after: Option<&str>,
            reverse: bool,
            limit: usize,
            visit: &mut dyn FnMut(&Record) -> bool,
        ) -> usize {
            self.inner.scan(prefix, after, reverse, limit, visit)
        }
        fn txn(&self, conds: &[Cond], ops: Vec<Op>) -> Result<i64, StoreError> {
            let due = {
                let mut h = self.hook.lock().unwrap();
                match h.as_ref() {
                    Some((picks, _)) if picks(&ops) => h.take(),
                    _ => None,
                }
            };
            if let Some((_, run)) = due {
                run();
            }
            self.inner.txn(conds, ops)
        }
        fn watch(&self) -> tokio::sync::broadcast::Receiver<Event> {
            self.inner.watch()
        }
        fn revision(&self) -> i64 {
            self.inner.revision()
        }
    }

    struct Fixture {
        reg: Arc<Registry>,
        store: Arc<HookStore>,
        scope: Scope,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(HookStore {
            inner: SqliteStore::open(&dir.path().join("state.db")).unwrap(),
            hook: Mutex::new(None),
        });
        let blobs = Arc::new(FsBlobs::open(&dir.path().join("registry")).unwrap());
        let reg = Arc::new(Registry {
            store: store.clone(),
            blobs,
            clock: Clock::default(),
            default_account: "000000000000".into(),
            registry_host: "localhost:4566".into(),
            token_secret: "s".into(),
            require_auth: false,
            hashers: Default::default(),
            blob_writes: Default::default(),
        });
        let scope = Scope {
            account: "000000000000".into(),
            region: "us-east-1".into(),
        };
        Fixture {
            reg,
            store,
            scope,
            _dir: dir,
        }
    }

    impl Fixture {
        fn repo(&self, name: &str) {
            self.reg
                .store
                .put(
                    &Registry::repo_key(&self.scope, name),
                    json!({"repositoryName": name}),
                )
                .unwrap();
        }
        /// Upload `bytes` to `repo` as a finished upload would.
        fn upload(&self, repo: &str, bytes: &[u8]) -> Digest {
            let d = Digest::sha256_of(bytes);
            let id = self.reg.blobs.begin_upload("{}").unwrap();
            std::fs::write(self.reg.blobs.upload_path(&id).unwrap().0, bytes).unwrap();
            self.reg.blobs.commit_upload(&id, &d, None).unwrap();
            self.reg
                .add_blob(&self.scope, repo, &d, bytes.len() as u64)
                .unwrap();
            d
        }
        fn manifest(&self, config: &Digest, layers: &[&Digest]) -> Vec<u8> {
            let layers: Vec<Value> = layers
                .iter()
                .map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.to_string(), "size": self.reg.blobs.stat(l).unwrap()}))
                .collect();
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": self.reg.blobs.stat(config).unwrap()},
                "layers": layers,
            }))
            .unwrap()
        }
        fn push(
            &self,
            repo: &str,
            tag: &str,
            config: &[u8],
            layers: &[&[u8]],
        ) -> (Digest, Digest, Vec<Digest>) {
            let c = self.upload(repo, config);
            let ls: Vec<Digest> = layers.iter().map(|l| self.upload(repo, l)).collect();
            let m = self.manifest(&c, &ls.iter().collect::<Vec<_>>());
            let (d, _) = self
                .reg
                .put_manifest(&self.scope, repo, tag, None, &m)
                .unwrap();
            (d, c, ls)
        }
        fn on_disk(&self, d: &Digest) -> bool {
            self.reg.blobs.stat(d).is_some()
        }
        fn readable(&self, repo: &str, d: &Digest) -> bool {
            self.reg.blob_in_repo(&self.scope, repo, d).is_some()
        }
        fn hour(&self) {
            self.reg.clock.advance_ms(3_600_001);
        }
    }

    #[test]
    fn referenced_blobs_stay_and_unreferenced_go_after_the_grace_period() {
        let f = fixture();
        f.repo("app");
        let (m1, c1, l1) = f.push("app", "v1", b"config one", &[b"shared layer", b"layer one"]);
        let (m2, c2, l2) = f.push("app", "v2", b"config two", &[b"shared layer", b"layer two"]);
        assert!(collect(&f.reg, DEFAULT_GRACE_SECS)
            .unwrap()
            .blobs_removed
            .is_empty());

        f.reg
            .delete_manifest(&f.scope, "app", &m1.to_string())
            .unwrap();
        let r = collect(&f.reg, DEFAULT_GRACE_SECS).unwrap();
        assert!(
            r.blobs_removed.is_empty(),
            "nothing goes before the grace period"
        );
        assert_eq!(
            r.memberships_marked, 3,
            "manifest, config and its own layer are marked"
        );
        assert!(
            f.readable("app", &l1[1]),
            "still readable during the grace period"
        );

        f.hour();
        let r = collect(&f.reg, DEFAULT_GRACE_SECS).unwrap();
        let mut gone = r.blobs_removed.clone();
        gone.sort();
        let mut expect = vec![m1.clone(), c1.clone(), l1[1].clone()];
        expect.sort();
        assert_eq!(gone, expect);
        assert_eq!(r.memberships_removed, 3);
        for d in [&m1, &c1, &l1[1]] {
            assert!(!f.on_disk(d) && !f.readable("app", d), "{d} removed");
        }
        for d in [&m2, &c2, &l2[0], &l2[1]] {
            assert!(f.on_disk(d) && f.readable("app", d), "{d} kept");
        }
        assert_eq!(l1[0], l2[0]);
        // The survivor still pulls.
        assert!(f.reg.get_manifest(&f.scope, "app", "v2").is_ok());
    }

    #[test]
    fn a_push_in_progress_keeps_its_layers_for_the_grace_period() {
        let f = fixture();
        f.repo("app");
        // Layers uploaded, manifest not yet put.
        let c = f.upload("app", b"config");
        let l = f.upload("app", b"layer");
        let r = collect(&f.reg, DEFAULT_GRACE_SECS).unwrap();
        assert!(r.blobs_removed.is_empty());
        assert_eq!(r.memberships_marked, 2);
        // The manifest arrives within the grace period: the marks are cleared.
        f.reg.clock.advance_ms(30 * 60 * 1000);
        let m = f.manifest(&c, &[&l]);
        f.reg.put_manifest(&f.scope, "app", "v1", None, &m).unwrap();
        f.hour();
        let r = collect(&f.reg, DEFAULT_GRACE_SECS).unwrap();
        assert!(r.blobs_removed.is_empty() && r.memberships_removed == 0);
        assert!(f.on_disk(&l) && f.readable("app", &l));
        let k = Registry::member_key(&f.scope, "app", &l.to_string());
        assert!(f
            .reg
            .store
            .get(&k)
            .unwrap()
            .value
            .get(UNREFERENCED_SINCE)
            .is_none());
    }

    #[test]
    fn an_abandoned_push_is_collected_and_a_late_manifest_is_refused() {
        let f = fixture();
        f.repo("app");
        let c = f.upload("app", b"config");
        let l = f.upload("app", b"layer");
        collect(&f.reg, DEFAULT_GRACE_SECS).unwrap();
        f.hour();
        let r = collect(&f.reg, DEFAULT_GRACE_SECS).unwrap();
        assert_eq!(r.blobs_removed.len(), 2);
        let m = f.manifest_unchecked(&c, &l);
        let e = f
            .reg
            .put_manifest(&f.scope, "app", "v1", None, &m)
            .unwrap_err();
        assert_eq!(e.code, "MANIFEST_BLOB_UNKNOWN");
    }

    #[test]
    fn uploading_again_restarts_the_grace_period() {
        let f = fixture();
        f.repo("app");
        f.upload("app", b"layer");
        collect(&f.reg, DEFAULT_GRACE_SECS).unwrap();
        f.reg.clock.advance_ms(59 * 60 * 1000);
        let l = f.upload("app", b"layer");
        f.reg.clock.advance_ms(2 * 60 * 1000);
        let r = collect(&f.reg, DEFAULT_GRACE_SECS).unwrap();
        assert!(r.blobs_removed.is_empty(), "re-added two minutes ago");
        assert!(f.readable("app", &l));
    }

    #[test]
    fn files_other_repositories_reference_stay() {
        let f = fixture();
        f.repo("one");
        f.repo("two");
        let (m1, _, l1) = f.push("one", "v1", b"config", &[b"layer"]);
        let (_, _, l2) = f.push("two", "v1", b"config", &[b"layer"]);
        assert_eq!(l1, l2);
        f.reg
            .delete_manifest(&f.scope, "one", &m1.to_string())
            .unwrap();
        let r = collect(&f.reg, 0.0).unwrap();
        assert!(
            r.blobs_removed.is_empty(),
            "the same manifest, config and layer live in 'two'"
        );
        assert_eq!(r.memberships_removed, 3);
        assert!(!f.readable("one", &l1[0]) && f.readable("two", &l1[0]));
        assert!(f.reg.get_manifest(&f.scope, "two", "v1").is_ok());
    }

    #[test]
    fn orphan_files_go_after_the_grace_period() {
        let f = fixture();
        f.repo("app");
        let (m, c, l) = f.push("app", "v1", b"config", &[b"layer"]);
        // Deleting the repository's records leaves the files behind.
        f.reg.delete_repository_records(&f.scope, "app").unwrap();
        assert!(
            collect(&f.reg, DEFAULT_GRACE_SECS)
                .unwrap()
                .blobs_removed
                .is_empty(),
            "written just now"
        );
        f.hour();
        assert_eq!(
            collect(&f.reg, DEFAULT_GRACE_SECS)
                .unwrap()
                .blobs_removed
                .len(),
            3
        );
        assert!(!f.on_disk(&m) && !f.on_disk(&c) && !f.on_disk(&l[0]));
    }

    fn is_image_put(ops: &[Op]) -> bool {
        ops.iter()
            .any(|o| matches!(o, Op::Put(k, _) if k.contains("/ecr/image/")))
    }
    fn is_membership_delete(ops: &[Op]) -> bool {
        ops.iter()
            .any(|o| matches!(o, Op::Delete(k) if k.contains("/ecr/blob/")))
    }

    #[test]
    fn a_collection_between_a_pushs_check_and_commit_fails_the_push() {
        let f = fixture();
        f.repo("app");
        let c = f.upload("app", b"config");
        let l = f.upload("app", b"layer");
        let m = f.manifest(&c, &[&l]);
        // A collection starts after put_manifest has checked its blobs, before it commits.
        // Its first phase removes the memberships the push relies on; its second (file
        // removal) waits for the push, which holds `blob_writes`.
        let reg = f.reg.clone();
        let layer_key = Registry::member_key(&f.scope, "app", &l.to_string());
        let collector = Arc::new(Mutex::new(None));
        let started = collector.clone();
        *f.store.hook.lock().unwrap() = Some((
            is_image_put,
            Box::new(move || {
                let mut events = reg.store.watch();
                let r = reg.clone();
                *started.lock().unwrap() =
                    Some(std::thread::spawn(move || collect(&r, 0.0).unwrap()));
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match events.blocking_recv() {
                        Ok(e) if e.key == layer_key && e.kind == berth_store::EventKind::Delete => {
                            break
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => panic!("store closed"),
                    }
                }
            }),
        ));
        let e = f
            .reg
            .put_manifest(&f.scope, "app", "v1", None, &m)
            .unwrap_err();
        assert_eq!(
            e.code, "MANIFEST_BLOB_UNKNOWN",
            "the push retried and found its blobs gone"
        );
        let report = collector.lock().unwrap().take().unwrap().join().unwrap();
        assert_eq!(
            report.blobs_removed.len(),
            3,
            "config, layer and the manifest's bytes"
        );
        assert!(
            f.reg.images(&f.scope, "app").is_empty(),
            "no image references missing blobs"
        );
    }

    #[test]
    fn a_push_between_the_collectors_scan_and_commit_keeps_its_blobs() {
        let f = fixture();
        f.repo("app");
        let c = f.upload("app", b"config");
        let l = f.upload("app", b"layer");
        let m = f.manifest(&c, &[&l]);
        // The push commits after the collection found the blobs unreferenced.
        let (reg, scope) = (f.reg.clone(), f.scope.clone());
        *f.store.hook.lock().unwrap() = Some((
            is_membership_delete,
            Box::new(move || {
                reg.put_manifest(&scope, "app", "v1", None, &m).unwrap();
            }),
        ));
        let r = collect(&f.reg, 0.0).unwrap();
        assert!(
            r.blobs_removed.is_empty() && r.memberships_removed == 0,
            "{r:?}"
        );
        assert!(f.store.hook.lock().unwrap().is_none(), "the push ran");
        let (d, _, _) = f.reg.get_manifest(&f.scope, "app", "v1").unwrap();
        assert!(f.on_disk(&d) && f.on_disk(&c) && f.on_disk(&l));
        assert!(f.readable("app", &c) && f.readable("app", &l));
    }

    #[test]
    fn a_blob_reused_while_set_aside_is_put_back() {
        let f = fixture();
        f.repo("app");
        let l = f.upload("app", b"layer");
        collect(&f.reg, 0.0).unwrap();
        assert!(!f.on_disk(&l));
        // A file written long ago and reused (touched) after the scan but before the move
        // carries its fresh time into quarantine; the re-check puts it back.
        let l = f.upload("app", b"layer");
        f.reg
            .store
            .txn(
                &[],
                vec![Op::Delete(Registry::member_key(
                    &f.scope,
                    "app",
                    &l.to_string(),
                ))],
            )
            .unwrap();
        f.reg.blobs.quarantine(&l).unwrap();
        let written = f.reg.blobs.quarantined_at(&l).unwrap();
        assert!(f.reg.clock.now() - written < 5.0);
        f.reg.blobs.restore(&l).unwrap();
        assert!(f.on_disk(&l));
        assert!(
            collect(&f.reg, DEFAULT_GRACE_SECS)
                .unwrap()
                .blobs_removed
                .is_empty(),
            "written just now"
        );
    }

    #[test]
    fn blobs_are_checked_and_removed_in_batches_and_none_is_missed() {
        let f = fixture();
        f.repo("app");
        let (_, c, l) = f.push("app", "v1", b"config", &[b"layer"]);
        let n = 2 * FINAL_CHECK_BATCH + 1;
        let loose: Vec<Digest> = (0..n)
            .map(|i| f.upload("app", format!("loose {i}").as_bytes()))
            .collect();
        let r = collect(&f.reg, 0.0).unwrap();
        assert_eq!(r.blobs_removed.len(), n, "{r:?}");
        assert!(loose.iter().all(|d| !f.on_disk(d)));
        assert!(f.on_disk(&c) && f.on_disk(&l[0]), "the image's blobs stay");
        assert!(loose
            .iter()
            .all(|d| f.reg.blobs.quarantined_at(d).is_none()));
    }

    #[test]
    fn index_children_are_referenced() {
        let f = fixture();
        f.repo("app");
        let (child, c, l) = f.push("app", "child", b"config", &[b"layer"]);
        // Untag the child (it stays as an untagged image) and reference it from an index.
        f.reg.delete_manifest(&f.scope, "app", "child").unwrap();
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child.to_string(), "size": f.reg.blobs.stat(&child).unwrap()}],
        }))
        .unwrap();
        let (idx, _) = f
            .reg
            .put_manifest(&f.scope, "app", "multi", None, &index)
            .unwrap();
        let r = collect(&f.reg, 0.0).unwrap();
        assert!(
            r.blobs_removed.is_empty() && r.memberships_removed == 0,
            "{r:?}"
        );
        assert!(f.on_disk(&idx) && f.on_disk(&child) && f.on_disk(&c) && f.on_disk(&l[0]));
    }

    #[test]
    fn blobs_set_aside_when_the_process_stopped_come_back_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::sha256_of(b"bytes");
        {
            let b = FsBlobs::open(dir.path()).unwrap();
            b.put_bytes(&d, b"bytes").unwrap();
            b.quarantine(&d).unwrap();
            assert_eq!(b.stat(&d), None);
        }
        let b = FsBlobs::open(dir.path()).unwrap();
        assert_eq!(b.stat(&d), Some(5));
        assert_eq!(b.quarantined_at(&d), None);
    }

    #[test]
    fn keys_split_with_nested_repository_names() {
        assert_eq!(
            split_key(
                "/000000000000/us-east-1/ecr/blob/team/web/sha256:ab",
                "blob"
            ),
            Some(("/000000000000/us-east-1/ecr", "team/web", "sha256:ab"))
        );
        assert_eq!(
            split_key("/000000000000/us-east-1/ecr/image/web/sha256:ab", "blob"),
            None
        );
        assert_eq!(
            split_key("/000000000000/us-east-1/ecs/blob/web/sha256:ab", "blob"),
            None
        );
        assert_eq!(
            split_key("/000000000000/us-east-1/ecr/blobs/web/sha256:ab", "blob"),
            None
        );
    }

    impl Fixture {
        /// A manifest naming blobs that may no longer be stored (sizes made up).
        fn manifest_unchecked(&self, config: &Digest, layer: &Digest) -> Vec<u8> {
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 6},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 5}],
            }))
            .unwrap()
        }
    }
}
