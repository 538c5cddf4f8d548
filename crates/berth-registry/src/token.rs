//! Registry tokens from GetAuthorizationToken: `AWS:<token>` as basic auth, valid for
//! 12 hours. A token is `<payload>.<hmac>`: the account and expiry, signed with the
//! server's secret, so the registry can check it without storing anything.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const VALIDITY_SECS: f64 = 12.0 * 3600.0;

fn mac(secret: &str, payload: &str) -> String {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(payload.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A token for `account` expiring at `expires_at` (epoch seconds).
pub fn issue(secret: &str, account: &str, expires_at: f64) -> String {
    let payload = format!("{account}-{}", expires_at as i64);
    format!("{payload}.{}", mac(secret, &payload))
}

/// The account a token was issued for, if it is genuine and unexpired at `now`.
pub fn verify(secret: &str, token: &str, now: f64) -> Option<String> {
    let (payload, sig) = token.rsplit_once('.')?;
    let expected = mac(secret, payload);
    if expected.len() != sig.len()
        || expected
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            != 0
    {
        return None;
    }
    let (account, expiry) = payload.rsplit_once('-')?;
    let expiry: i64 = expiry.parse().ok()?;
    (now < expiry as f64).then(|| account.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_expiry_and_forgery() {
        let t = issue("s", "000000000000", 1000.0);
        assert_eq!(verify("s", &t, 999.0).as_deref(), Some("000000000000"));
        assert_eq!(verify("s", &t, 1000.0), None, "expired");
        assert_eq!(verify("other", &t, 1.0), None, "wrong secret");
        let forged = t.replace("000000000000", "111111111111");
        assert_eq!(verify("s", &forged, 1.0), None);
    }
}
