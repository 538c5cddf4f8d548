//! Listing a bucket's keys in UTF-8 byte order, with a prefix, a delimiter that rolls keys
//! up into common prefixes, and pages that resume after a key.

use crate::object_key;
use berth_store::Store;
use serde_json::Value;
use std::sync::Arc;

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub contents: Vec<(String, Arc<Value>)>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned; the next page starts after it.
    pub last: Option<String>,
}

/// Where a page that starts after `marker` begins. A marker that rolls up into a common
/// prefix (it holds the delimiter after `prefix`) was represented by that prefix, so the
/// page begins after every key under it; any other marker is a key to start after.
pub fn resume_after(marker: &str, prefix: &str, delimiter: Option<&str>) -> String {
    if let (Some(d), Some(rest)) = (
        delimiter.filter(|d| !d.is_empty()),
        marker.strip_prefix(prefix),
    ) {
        if let Some(i) = rest.find(d) {
            return format!("{}\u{10FFFF}", &marker[..prefix.len() + i + d.len()]);
        }
    }
    marker.to_string()
}

/// Up to `max` keys and common prefixes of `bucket` that start with `prefix`, after the
/// key `after` (see `resume_after`).
pub fn list_objects(
    store: &dyn Store,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Listing {
    let mut out = Listing::default();
    if max == 0 {
        return out;
    }
    let base = object_key(bucket, "");
    let scan_prefix = format!("{base}{prefix}");
    let after_key = after.map(|a| format!("{base}{a}"));
    let delimiter = delimiter.filter(|d| !d.is_empty());
    // Entries in order, each either a key or a common prefix.
    let mut entries: Vec<(String, Option<Arc<Value>>)> = vec![];
    store.scan(
        &scan_prefix,
        after_key.as_deref(),
        false,
        max + 1,
        &mut |rec| {
            let key = &rec.key[base.len()..];
            if let Some(d) = delimiter {
                if let Some(i) = key[prefix.len()..].find(d) {
                    let common = &key[..prefix.len() + i + d.len()];
                    if entries
                        .last()
                        .is_some_and(|(k, v)| v.is_none() && k == common)
                    {
                        return false;
                    }
                    entries.push((common.to_string(), None));
                    return true;
                }
            }
            entries.push((key.to_string(), Some(rec.value.clone())));
            true
        },
    );
    if entries.len() > max {
        entries.truncate(max);
        out.truncated = true;
    }
    out.last = entries.last().map(|(k, _)| k.clone());
    for (k, v) in entries {
        match v {
            Some(v) => out.contents.push((k, v)),
            None => out.common_prefixes.push(k),
        }
    }
    out
}
