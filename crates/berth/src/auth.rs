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
        let mut settings = SigningSettings::default();
        if presigned {
            settings.signature_location = SignatureLocation::QueryParams;
            let expires = query
                .get("X-Amz-Expires")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(900);
            settings.expires_in = Some(Duration::from_secs(expires));
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
    }
}
