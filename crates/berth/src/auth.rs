//! SigV4 verification when `--enforce-auth` is on: re-sign the request with the known
//! secret and compare signatures.

use aws_credential_types::Credentials;
pub use aws_sigv4::http_request::SignableBody;
use aws_sigv4::http_request::{sign, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use berth_wire::sigv4::AuthHeader;
use berth_wire::ApiError;
use hyper::http::request::Parts;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Auth {
    pub enforce: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// How the client's protocol words a signature whose time is out of range.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// JSON, query, CBOR and rest-json services: `InvalidSignatureException`.
    Aws,
    /// EC2: `RequestExpired`.
    Ec2,
    /// S3: `RequestTimeTooSkewed`.
    S3,
}

/// How far a signed request's X-Amz-Date may be from the real clock, either way (AWS's
/// 15 minutes). The test clock never moves this check.
const SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest a presigned URL may live (S3's 7 days).
const MAX_EXPIRES: u64 = 604_800;

fn denied(code: &str, msg: impl Into<String>) -> ApiError {
    ApiError::new(403, code, msg)
}

impl Auth {
    pub fn check(
        &self,
        parts: &Parts,
        body: SignableBody<'_>,
        header: Option<&AuthHeader>,
        query: &HashMap<String, String>,
        dialect: Dialect,
    ) -> Result<(), ApiError> {
        if !self.enforce {
            return Ok(());
        }
        let presigned = header.is_none() && query.contains_key("X-Amz-Signature");
        let (access_key, signed_headers, signature, amz_date) = match header {
            Some(h) => {
                let date = parts
                    .headers
                    .get("x-amz-date")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| denied("IncompleteSignature", "Missing X-Amz-Date header"))?;
                (
                    h.scope.access_key().to_string(),
                    h.signed_headers().map(str::to_string).collect(),
                    h.signature.clone(),
                    date.to_string(),
                )
            }
            None if presigned => {
                let cred = query
                    .get("X-Amz-Credential")
                    .and_then(|c| berth_wire::sigv4::parse_credential(c));
                let cred = cred
                    .ok_or_else(|| denied("IncompleteSignature", "Malformed X-Amz-Credential"))?;
                let signed: Vec<String> = query
                    .get("X-Amz-SignedHeaders")
                    .map(|s| s.split(';').map(str::to_string).collect())
                    .unwrap_or_default();
                let date = query.get("X-Amz-Date").cloned().unwrap_or_default();
                (
                    cred.access_key().to_string(),
                    signed,
                    query["X-Amz-Signature"].clone(),
                    date,
                )
            }
            None => {
                return Err(denied(
                    "MissingAuthenticationToken",
                    "Request is missing Authentication Token",
                ));
            }
        };
        if access_key != self.access_key_id {
            return Err(denied(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        let time = parse_amz_date(&amz_date).ok_or_else(|| {
            denied(
                "IncompleteSignature",
                format!("Invalid X-Amz-Date {amz_date:?}"),
            )
        })?;
        let scope = match header {
            Some(h) => h.scope.clone(),
            None => berth_wire::sigv4::parse_credential(&query["X-Amz-Credential"])
                .expect("checked above"),
        };

        let identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "berth",
        )
        .into();
        let now = SystemTime::now();
        let mut settings = SigningSettings::default();
        if presigned {
            settings.signature_location = SignatureLocation::QueryParams;
            let expires = query
                .get("X-Amz-Expires")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(900);
            if expires > MAX_EXPIRES {
                return Err(denied(
                    "AuthorizationQueryParametersError",
                    format!("X-Amz-Expires must be less than a week (in seconds) that is; {MAX_EXPIRES}"),
                ));
            }
            if now > time + Duration::from_secs(expires) {
                return Err(denied("AccessDenied", "Request has expired"));
            }
            settings.expires_in = Some(Duration::from_secs(expires));
        } else {
            check_skew(time, now, &amz_date, dialect)?;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(scope.region())
            .name(scope.service())
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| ApiError::internal(e.to_string()))?
            .into();
        // Sign exactly what the client signed: the listed headers, the path and the
        // query string without the signature itself.
        let headers: Vec<(&str, &str)> = signed_headers
            .iter()
            .filter(|h| h.as_str() != "x-amz-date" || presigned)
            .filter_map(|h| {
                parts
                    .headers
                    .get(h.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(|v| (h.as_str(), v))
            })
            .collect();
        let uri = if presigned {
            let q: Vec<(String, String)> =
                form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .filter(|(k, _)| !k.starts_with("X-Amz-"))
                    .collect();
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &q {
                s.append_pair(k, v);
            }
            let qs = s.finish();
            if qs.is_empty() {
                parts.uri.path().to_string()
            } else {
                format!("{}?{qs}", parts.uri.path())
            }
        } else {
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into())
        };
        let signable = SignableRequest::new(
            parts.method.as_str(),
            format!(
                "http://{}{}",
                parts
                    .headers
                    .get("host")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("localhost"),
                uri
            ),
            headers.into_iter(),
            if presigned {
                SignableBody::UnsignedPayload
            } else {
                body
            },
        )
        .map_err(|e| denied("IncompleteSignature", e.to_string()))?;
        let out =
            sign(signable, &params).map_err(|e| denied("IncompleteSignature", e.to_string()))?;
        if !constant_time_eq(out.signature().as_bytes(), signature.as_bytes()) {
            return Err(denied(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            ));
        }
        Ok(())
    }
}

/// A header-signed request dated more than 15 minutes from now is refused, in the words
/// of the client's protocol.
fn check_skew(
    time: SystemTime,
    now: SystemTime,
    amz_date: &str,
    dialect: Dialect,
) -> Result<(), ApiError> {
    let late = now.duration_since(time).is_ok_and(|d| d > SKEW);
    let early = time.duration_since(now).is_ok_and(|d| d > SKEW);
    if !late && !early {
        return Ok(());
    }
    Err(match dialect {
        Dialect::Ec2 => ApiError::new(400, "RequestExpired", "Request has expired."),
        Dialect::S3 => denied(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ),
        Dialect::Aws if late => denied(
            "InvalidSignatureException",
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
                format_amz_date(now - SKEW),
                format_amz_date(now)
            ),
        ),
        Dialect::Aws => denied(
            "InvalidSignatureException",
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
                format_amz_date(now + SKEW),
                format_amz_date(now)
            ),
        ),
    })
}

/// `20260126T071326Z`, the form X-Amz-Date takes.
fn format_amz_date(t: SystemTime) -> String {
    let iso = berth_wire::time::format_iso8601(
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as f64)
            .unwrap_or(0.0),
    );
    // 2026-01-26T07:13:26.000Z or 2026-01-26T07:13:26Z: keep the digits up to the seconds.
    let digits: String = iso
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `20260126T071326Z`
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_amz_date() {
        let t = parse_amz_date("20261126T071326Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_677_206
        );
        assert!(parse_amz_date("2026-11-26").is_none());
        assert!(parse_amz_date("20261326T071326Z").is_none());
        assert_eq!(format_amz_date(t), "20261126T071326Z");
    }

    #[test]
    fn skew_is_fifteen_minutes_either_way() {
        let now = parse_amz_date("20261126T071326Z").unwrap();
        let ok = |t| check_skew(t, now, "x", Dialect::Aws).is_ok();
        assert!(ok(now - SKEW) && ok(now + SKEW));
        assert!(!ok(now - SKEW - Duration::from_secs(1)));
        assert!(!ok(now + SKEW + Duration::from_secs(1)));
        let e = check_skew(now - SKEW * 2, now, "20261126T064326Z", Dialect::Aws).unwrap_err();
        assert_eq!(
            e.message,
            "Signature expired: 20261126T064326Z is now earlier than 20261126T065826Z (20261126T071326Z - 15 min.)"
        );
        let e = check_skew(now + SKEW * 2, now, "x", Dialect::Ec2).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "RequestExpired"));
        let e = check_skew(now - SKEW * 2, now, "x", Dialect::S3).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (403, "RequestTimeTooSkewed"));
    }
}
