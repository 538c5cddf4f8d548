//! Registry authentication beyond basic credentials: the distribution token protocol.
//! A registry answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`;
//! the client asks the realm (with its basic credentials, if it has any) for a token for
//! that service and scope and retries with `Authorization: Bearer`. Tokens are kept per
//! registry, scope and credentials until shortly before they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A `Bearer` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// The first `Bearer` challenge among the `WWW-Authenticate` headers.
pub(crate) fn bearer_challenge(headers: &hyper::HeaderMap) -> Option<Challenge> {
    headers
        .get_all(hyper::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|(_, params)| {
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            Some(Challenge {
                realm: get("realm").filter(|r| !r.is_empty())?,
                service: get("service"),
                scope: get("scope").filter(|s| !s.is_empty()),
            })
        })
}

/// Challenges (RFC 7235): `scheme k=v, k="quoted", other-scheme k=v`. Keys lowercased.
fn parse_challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let c: Vec<char> = value.chars().collect();
    let mut out: Vec<(String, Vec<(String, String)>)> = vec![];
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < c.len() && (c[*i] == ' ' || c[*i] == '\t') {
            *i += 1;
        }
    };
    loop {
        while i < c.len() && matches!(c[i], ' ' | '\t' | ',') {
            i += 1;
        }
        if i >= c.len() {
            break;
        }
        let start = i;
        while i < c.len() && !matches!(c[i], ' ' | '\t' | ',' | '=') {
            i += 1;
        }
        let token: String = c[start..i].iter().collect();
        let mut j = i;
        skip_ws(&mut j);
        if j < c.len() && c[j] == '=' {
            i = j + 1;
            skip_ws(&mut i);
            let mut v = String::new();
            if i < c.len() && c[i] == '"' {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' && i + 1 < c.len() {
                        i += 1;
                    }
                    v.push(c[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < c.len() && !matches!(c[i], ' ' | '\t' | ',') {
                    v.push(c[i]);
                    i += 1;
                }
            }
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_ascii_lowercase(), v));
            }
        } else if !token.is_empty() {
            out.push((token, vec![]));
        }
    }
    out
}

/// The token in a token service's answer (`token`, or OAuth2's `access_token`) and how
/// long it lives (`expires_in`, 60 seconds when absent, as the specification says).
pub(crate) fn parse_token_response(body: &[u8]) -> Result<(String, Duration), String> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let token = ["token", "access_token"]
        .iter()
        .find_map(|k| {
            doc.get(*k)
                .and_then(|v| v.as_str())
                .filter(|t| !t.is_empty())
        })
        .ok_or("the answer has no token")?;
    let expires_in = doc
        .get("expires_in")
        .and_then(|v| v.as_u64())
        .filter(|s| *s > 0)
        .unwrap_or(60);
    Ok((token.to_string(), Duration::from_secs(expires_in)))
}

/// Tokens by (registry, scope, whose credentials), each with the instant it stops being
/// used. The credentials are part of the key so that a pull without them, or with
/// another account's, never rides on a token someone else's credentials obtained.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

/// (registry, scope, identity)
type TokenKey = (String, String, String);

impl TokenCache {
    pub fn get(&self, registry: &str, scope: &str, identity: &str) -> Option<String> {
        let tokens = self.tokens.lock().expect("token cache");
        let key = (
            registry.to_string(),
            scope.to_string(),
            identity.to_string(),
        );
        tokens
            .get(&key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    /// Keep `token`, asked for at `asked`, for nine tenths of its lifetime.
    pub fn put(
        &self,
        registry: &str,
        scope: &str,
        identity: &str,
        token: &str,
        asked: Instant,
        lifetime: Duration,
    ) {
        let mut tokens = self.tokens.lock().expect("token cache");
        let now = Instant::now();
        tokens.retain(|_, (_, until)| now < *until);
        tokens.insert(
            (
                registry.to_string(),
                scope.to_string(),
                identity.to_string(),
            ),
            (token.to_string(), asked + lifetime.mul_f64(0.9)),
        );
    }

    pub fn forget(&self, registry: &str, scope: &str, identity: &str) {
        let key = (
            registry.to_string(),
            scope.to_string(),
            identity.to_string(),
        );
        self.tokens.lock().expect("token cache").remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            "www-authenticate",
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull,push""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            bearer_challenge(&h),
            Some(Challenge {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:team/app:pull,push".into()),
            })
        );
        // Several challenges in one header, odd spacing, escapes and unquoted values.
        let v = r#"Basic realm="x", bearer  Realm = "https://a/t?x=\"y\"" , service=reg"#;
        let all = parse_challenges(v);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "Basic");
        assert_eq!(
            all[1].1,
            vec![
                ("realm".to_string(), r#"https://a/t?x="y""#.to_string()),
                ("service".to_string(), "reg".to_string())
            ]
        );
        let mut h = hyper::HeaderMap::new();
        h.append(
            "www-authenticate",
            r#"Basic realm="Registry""#.parse().unwrap(),
        );
        assert_eq!(bearer_challenge(&h), None);
        h.append(
            "www-authenticate",
            r#"Bearer realm="http://t/""#.parse().unwrap(),
        );
        let c = bearer_challenge(&h).unwrap();
        assert_eq!(
            (c.realm.as_str(), c.service, c.scope),
            ("http://t/", None, None)
        );
        let mut h = hyper::HeaderMap::new();
        h.insert("www-authenticate", r#"Bearer service="s""#.parse().unwrap());
        assert_eq!(bearer_challenge(&h), None, "a challenge without a realm");
    }

    #[test]
    fn token_responses() {
        assert_eq!(
            parse_token_response(br#"{"token":"t1","expires_in":300}"#).unwrap(),
            ("t1".to_string(), Duration::from_secs(300))
        );
        assert_eq!(
            parse_token_response(br#"{"access_token":"t2"}"#).unwrap(),
            ("t2".to_string(), Duration::from_secs(60))
        );
        assert!(parse_token_response(br#"{"token":""}"#).is_err());
        assert!(parse_token_response(b"<html>").is_err());
    }

    #[test]
    fn cache_is_per_registry_scope_and_credentials() {
        let c = TokenCache::default();
        let now = Instant::now();
        c.put(
            "r",
            "repository:a:pull",
            "alice",
            "t",
            now,
            Duration::from_secs(60),
        );
        assert_eq!(
            c.get("r", "repository:a:pull", "alice").as_deref(),
            Some("t")
        );
        assert_eq!(c.get("r", "repository:a:pull", ""), None);
        assert_eq!(c.get("r", "repository:b:pull", "alice"), None);
        assert_eq!(c.get("r2", "repository:a:pull", "alice"), None);
        // Expired: not used.
        c.put("r", "repository:old:pull", "", "t", now, Duration::ZERO);
        assert_eq!(c.get("r", "repository:old:pull", ""), None);
        c.forget("r", "repository:a:pull", "alice");
        assert_eq!(c.get("r", "repository:a:pull", "alice"), None);
    }
}
