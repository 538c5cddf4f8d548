//! Listener rules as an application load balancer evaluates them: every condition of a
//! rule must match, and within a condition any one value; the first rule by priority that
//! matches decides, and the default rule matches everything. Patterns take `*` (any run of
//! characters) and `?` (one character); paths compare case-sensitively, the rest not.

use berth_model::elbv2 as model;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Path(Vec<String>),
    Host(Vec<String>),
    Header(String, Vec<String>),
    Method(Vec<String>),
    /// (key, value) patterns; a missing key matches any key.
    Query(Vec<(Option<String>, String)>),
    SourceIp(Vec<berth_net::Cidr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Target groups with their weights, and how long a client sticks to the group it
    /// was sent to (TargetGroupStickinessConfig), if it does.
    Forward {
        groups: Vec<(String, u32)>,
        sticky_secs: Option<u64>,
    },
    Redirect(model::rule::RedirectConfig),
    FixedResponse {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
}

/// Why a stored rule cannot be served as it is (the whole rule is then left out).
pub type Unservable = String;

impl Condition {
    /// A stored condition, compiled. Exhaustive: a condition the model gains must be
    /// handled here, or this does not compile.
    pub fn from_model(c: &model::Condition) -> Result<Condition, Unservable> {
        Ok(match c {
            model::Condition::PathPattern { config, .. } => Condition::Path(config.values.clone()),
            model::Condition::HostHeader { config, .. } => Condition::Host(config.values.clone()),
            model::Condition::HttpHeader { config, .. } => {
                Condition::Header(config.name.to_ascii_lowercase(), config.values.clone())
            }
            model::Condition::HttpRequestMethod { config, .. } => {
                Condition::Method(config.values.clone())
            }
            model::Condition::QueryString { config, .. } => Condition::Query(
                config
                    .values
                    .iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect(),
            ),
            model::Condition::SourceIp { config, .. } => Condition::SourceIp(
                config
                    .values
                    .iter()
                    .filter_map(|s| berth_net::Cidr::parse(s))
                    .collect(),
            ),
        })
    }

    pub fn matches(&self, r: &RequestFacts) -> bool {
        match self {
            Condition::Path(p) => p.iter().any(|p| wildcard(p, r.path, false)),
            Condition::Host(p) => p.iter().any(|p| wildcard(p, r.host, true)),
            Condition::Header(name, p) => r
                .headers
                .values(name)
                .any(|v| p.iter().any(|p| wildcard(p, v, true))),
            Condition::Method(m) => m.iter().any(|m| m == r.method),
            Condition::Query(pairs) => {
                let q: Vec<(String, String)> =
                    form_urlencoded::parse(r.query.unwrap_or("").as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                pairs.iter().any(|(k, v)| {
                    q.iter().any(|(qk, qv)| {
                        k.as_ref().is_none_or(|k| wildcard(k, qk, true)) && wildcard(v, qv, true)
                    })
                })
            }
            Condition::SourceIp(cidrs) => match r.source {
                IpAddr::V4(ip) => cidrs.iter().any(|c| c.contains_ip(ip)),
                IpAddr::V6(_) => false,
            },
        }
    }
}

impl Action {
    /// The action a rule takes: the one with the lowest Order (the API stores one).
    pub fn from_model(actions: &[model::Action]) -> Result<Action, Unservable> {
        let a = actions
            .iter()
            .min_by_key(|a| a.order().unwrap_or(i64::MAX))
            .ok_or("a rule without actions")?;
        Ok(match a {
            model::Action::Forward { config, .. } => {
                let groups: Vec<(String, u32)> = a
                    .forward_groups()
                    .into_iter()
                    .map(|(g, w)| (g.to_string(), w))
                    .collect();
                if groups.is_empty() {
                    return Err("a forward action without target groups".into());
                }
                let sticky_secs = config
                    .as_ref()
                    .and_then(|c| c.stickiness.as_ref())
                    .filter(|st| st.enabled && groups.len() > 1)
                    .map(|st| st.duration_seconds.unwrap_or(3600));
                Action::Forward {
                    groups,
                    sticky_secs,
                }
            }
            model::Action::Redirect { config, .. } => Action::Redirect(config.clone()),
            model::Action::FixedResponse { config, .. } => Action::FixedResponse {
                status: config
                    .status_code
                    .parse()
                    .map_err(|_| format!("fixed-response status {:?}", config.status_code))?,
                content_type: config.content_type.clone(),
                body: config.message_body.clone().unwrap_or_default(),
            },
        })
    }
}

/// What rules look at in a request.
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Without its port.
    pub host: &'a str,
    pub query: Option<&'a str>,
    pub headers: Headers<'a>,
    pub source: IpAddr,
}

/// A request's headers: hyper's map (HTTP/2) or the parsed head of an HTTP/1 request.
#[derive(Clone, Copy)]
pub enum Headers<'a> {
    Map(&'a hyper::HeaderMap),
    Raw(&'a [httparse::Header<'a>]),
}

impl<'a> Headers<'a> {
    /// The values of every header called `name` (lower case), in order; values that are
    /// not text are left out.
    pub fn values(self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let map = match self {
            Headers::Map(m) => Some(m.get_all(name).iter().filter_map(|v| v.to_str().ok())),
            Headers::Raw(_) => None,
        };
        let raw = match self {
            Headers::Raw(r) => Some(
                r.iter()
                    .filter(move |h| h.name.eq_ignore_ascii_case(name))
                    .filter_map(|h| std::str::from_utf8(h.value).ok()),
            ),
            Headers::Map(_) => None,
        };
        map.into_iter().flatten().chain(raw.into_iter().flatten())
    }
}

/// `*` matches any run of characters, `?` exactly one.
pub fn wildcard(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if ignore_case {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, t) = (norm(pattern), norm(text));
    // Iterative matching with backtracking to the last star.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn wildcards() {
        assert!(wildcard("/api/*", "/api/users", false));
        assert!(wildcard("/api/*", "/api/", false));
        assert!(!wildcard("/api/*", "/api", false));
        assert!(!wildcard("/API/*", "/api/x", false));
        assert!(wildcard("*.example.com", "WWW.Example.com", true));
        assert!(wildcard("/a?c", "/abc", false));
        assert!(!wildcard("/a?c", "/abbc", false));
        assert!(wildcard("*", "", false));
        assert!(wildcard("/x*y*z", "/x123y45z", false));
        assert!(!wildcard("/x*y*z", "/x123y45", false));
    }

    #[test]
    fn conditions_from_records_and_matching() {
        let headers = {
            let mut h = hyper::HeaderMap::new();
            h.insert("user-agent", "Mozilla/5.0 Mobile".parse().unwrap());
            h
        };
        let r = RequestFacts {
            method: "POST",
            path: "/api/v1",
            host: "shop.example.com",
            query: Some("version=v2&x=%41"),
            headers: Headers::Map(&headers),
            source: "10.1.2.3".parse().unwrap(),
        };
        let c = |v: Value| {
            Condition::from_model(&model::from_value(&v).unwrap())
                .unwrap()
                .matches(&r)
        };
        assert!(c(
            json!({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/img/*", "/api/*"]}})
        ));
        assert!(!c(
            json!({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/img/*"]}})
        ));
        assert!(c(
            json!({"Field": "host-header", "HostHeaderConfig": {"Values": ["*.EXAMPLE.com"]}})
        ));
        assert!(c(
            json!({"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "User-Agent", "Values": ["*mobile*"]}})
        ));
        assert!(c(
            json!({"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET", "POST"]}})
        ));
        assert!(c(
            json!({"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "version", "Value": "v2"}]}})
        ));
        assert!(c(
            json!({"Field": "query-string", "QueryStringConfig": {"Values": [{"Value": "a"}]}})
        ));
        assert!(c(
            json!({"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}})
        ));
        assert!(!c(
            json!({"Field": "source-ip", "SourceIpConfig": {"Values": ["192.168.0.0/16"]}})
        ));
    }

    #[test]
    fn the_first_terminal_action_by_order() {
        let a = Action::from_model(&model::from_value::<Vec<model::Action>>(&json!([
            {"Type": "fixed-response", "Order": 2, "FixedResponseConfig": {"StatusCode": "404"}},
            {"Type": "forward", "Order": 1, "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": "a", "Weight": 3}, {"TargetGroupArn": "b", "Weight": 1}]}},
        ]))
        .unwrap())
        .unwrap();
        assert_eq!(
            a,
            Action::Forward {
                groups: vec![("a".into(), 3), ("b".into(), 1)],
                sticky_secs: None
            }
        );
    }
}
