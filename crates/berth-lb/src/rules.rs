//! Listener rules as an application load balancer evaluates them: every condition of a
//! rule must match, and within a condition any one value; the first rule by priority that
//! matches decides, and the default rule matches everything. Patterns take `*` (any run of
//! characters) and `?` (one character); paths compare case-sensitively, the rest not.

use serde_json::Value;
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
    /// RedirectConfig as the model has it.
    Redirect(Value),
    FixedResponse {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Condition {
    /// A condition of a rule record (the API stores them with their *Config filled in).
    pub fn from_model(c: &Value) -> Option<Condition> {
        let field = c["Field"].as_str()?;
        Some(match field {
            "path-pattern" => Condition::Path(strings(&c["PathPatternConfig"]["Values"])),
            "host-header" => Condition::Host(strings(&c["HostHeaderConfig"]["Values"])),
            "http-header" => Condition::Header(
                c["HttpHeaderConfig"]["HttpHeaderName"]
                    .as_str()?
                    .to_ascii_lowercase(),
                strings(&c["HttpHeaderConfig"]["Values"]),
            ),
            "http-request-method" => {
                Condition::Method(strings(&c["HttpRequestMethodConfig"]["Values"]))
            }
            "query-string" => Condition::Query(
                c["QueryStringConfig"]["Values"]
                    .as_array()?
                    .iter()
                    .map(|kv| {
                        (
                            kv["Key"].as_str().map(str::to_string),
                            kv["Value"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect(),
            ),
            "source-ip" => Condition::SourceIp(
                strings(&c["SourceIpConfig"]["Values"])
                    .iter()
                    .filter_map(|s| berth_net::Cidr::parse(s))
                    .collect(),
            ),
            _ => return None,
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
    /// The action a rule takes: the one with the lowest Order among the terminal ones.
    pub fn from_model(actions: &Value) -> Option<Action> {
        let mut list: Vec<&Value> = actions.as_array()?.iter().collect();
        list.sort_by_key(|a| a["Order"].as_i64().unwrap_or(i64::MAX));
        list.into_iter().find_map(|a| match a["Type"].as_str()? {
            "forward" => {
                let groups: Vec<(String, u32)> = match a["ForwardConfig"]["TargetGroups"].as_array()
                {
                    Some(g) => g
                        .iter()
                        .filter_map(|g| {
                            Some((
                                g["TargetGroupArn"].as_str()?.to_string(),
                                g["Weight"].as_u64().unwrap_or(1) as u32,
                            ))
                        })
                        .collect(),
                    None => vec![(a["TargetGroupArn"].as_str()?.to_string(), 1)],
                };
                let st = &a["ForwardConfig"]["TargetGroupStickinessConfig"];
                let sticky_secs = (st["Enabled"] == true && groups.len() > 1)
                    .then(|| st["DurationSeconds"].as_u64().unwrap_or(3600));
                Some(Action::Forward {
                    groups,
                    sticky_secs,
                })
            }
            "redirect" => Some(Action::Redirect(a["RedirectConfig"].clone())),
            "fixed-response" => {
                let c = &a["FixedResponseConfig"];
                Some(Action::FixedResponse {
                    status: c["StatusCode"].as_str()?.parse().ok()?,
                    content_type: c["ContentType"].as_str().map(str::to_string),
                    body: c["MessageBody"].as_str().unwrap_or("").to_string(),
                })
            }
            _ => None,
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
    use serde_json::json;

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
        let c = |v: Value| Condition::from_model(&v).unwrap().matches(&r);
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
        let a = Action::from_model(&json!([
            {"Type": "fixed-response", "Order": 2, "FixedResponseConfig": {"StatusCode": "404"}},
            {"Type": "forward", "Order": 1, "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": "a", "Weight": 3}, {"TargetGroupArn": "b", "Weight": 1}]}},
        ]))
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
