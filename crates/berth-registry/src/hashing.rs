//! Upload digests computed while the bytes arrive, so committing an upload does not
//! read it back. A session's state is kept only while it matches the data file's
//! length exactly; anything else (a restart, a write through another path) falls back
//! to hashing the file at commit.

use crate::digest::{Algorithm, Digest};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct UploadHashers {
    sessions: Mutex<HashMap<String, (u64, Sha256)>>,
}

impl UploadHashers {
    /// The running hash of session `id` if it covers exactly `len` bytes; a fresh one for
    /// an empty session; None when the bytes so far were not hashed here.
    pub fn take(&self, id: &str, len: u64) -> Option<Sha256> {
        let state = self.sessions.lock().expect("hashers lock").remove(id);
        match state {
            Some((n, h)) if n == len => Some(h),
            _ if len == 0 => Some(Sha256::new()),
            _ => None,
        }
    }

    pub fn put(&self, id: &str, len: u64, h: Sha256) {
        self.sessions
            .lock()
            .expect("hashers lock")
            .insert(id.to_string(), (len, h));
    }

    /// The sha256 digest of session `id` if its hash covers exactly `len` bytes.
    pub fn finish(&self, id: &str, len: u64) -> Option<Digest> {
        let (n, h) = self.sessions.lock().expect("hashers lock").remove(id)?;
        (n == len).then(|| Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(h.finalize()),
        })
    }

    pub fn forget(&self, id: &str) {
        self.sessions.lock().expect("hashers lock").remove(id);
    }
}
