//! berth-wire: the AWS protocols every Berth service speaks. It knows nothing about any
//! particular service beyond the models it is handed.

pub mod cbor;
pub mod error;
pub mod iam;
pub mod json;
pub mod model;
pub mod page;
pub mod query;
pub mod rest;
pub mod service;
pub mod sigv4;
pub mod time;
pub mod typed;
pub mod validate;

pub use error::{ApiError, ApiResult};
pub use model::Model;
pub use service::{Protocol, RequestContext, Service, WireResponse};
pub use time::Clock;
pub use validate::ValidationCodes;

/// A request id in AWS's format (a version 4 UUID). Ids must be unique, not secret: one
/// random value per process plus a counter, so a request costs no system call.
pub fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static BASE: OnceLock<[u8; 16]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = BASE.get_or_init(|| *uuid::Uuid::new_v4().as_bytes());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = *base;
    // The counter goes where the version and variant bits are not (bytes 9..16 and the
    // low bits of byte 8), mixed into the random base, so ids stay unique per process.
    for (b, c) in bytes[9..16].iter_mut().zip(&n.to_be_bytes()[1..]) {
        *b ^= c;
    }
    bytes[8] ^= (n >> 56) as u8 & 0x3f;
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod request_id_tests {
    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
    }
}
