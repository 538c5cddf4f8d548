//! Describe filters (`Filter.N.Name`, `Filter.N.Value.M`): a resource matches when every
//! filter has at least one value matching; values may use `*` and `?` wildcards.

use crate::common::invalid_value;
use crate::types::Filter;
use berth_wire::ApiResult;
use serde_json::Value;

pub struct Filters(Vec<(String, Vec<String>)>);

impl Filters {
    /// Read the request's filters, rejecting names the operation does not know.
    pub fn parse(filters: Option<&[Filter]>, known: &[&str]) -> ApiResult<Filters> {
        let mut out = Vec::new();
        for f in filters.unwrap_or_default() {
            let name = f.name.clone().unwrap_or_default();
            check_name(&name, known)?;
            out.push((name, f.values.clone().unwrap_or_default()));
        }
        Ok(Filters(out))
    }

    /// `field(name)` gives the resource's values for a non-tag filter name.
    pub fn matches(&self, tags: &[Value], field: impl Fn(&str) -> Vec<String>) -> bool {
        self.0.iter().all(|(name, wanted)| {
            let have: Vec<String> = if let Some(key) = name.strip_prefix("tag:") {
                tags.iter()
                    .filter(|t| t["Key"] == key)
                    .map(|t| crate::common::str_of(t, "Value").to_string())
                    .collect()
            } else if name == "tag-key" {
                tags.iter()
                    .map(|t| crate::common::str_of(t, "Key").to_string())
                    .collect()
            } else if name == "tag-value" {
                tags.iter()
                    .map(|t| crate::common::str_of(t, "Value").to_string())
                    .collect()
            } else {
                field(name)
            };
            wanted.iter().any(|w| have.iter().any(|h| glob(w, h)))
        })
    }
}

/// Tag filters (`tag:KEY`, `tag-key`, `tag-value`) and the operation's `known` names.
fn check_name(name: &str, known: &[&str]) -> ApiResult<()> {
    let tag_filter = name.starts_with("tag:") || name == "tag-key" || name == "tag-value";
    if !tag_filter && !known.contains(&name) {
        return Err(invalid_value(format!("The filter '{name}' is invalid")));
    }
    Ok(())
}

/// `*` matches any run of characters, `?` exactly one; `\` escapes the next character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with backtracking to the most recent `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let (lit, next) = match p.get(pi) {
            Some('\\') if pi + 1 < p.len() => (Some(p[pi + 1]), pi + 2),
            Some('*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some('?') => (None, pi + 1),
            Some(c) => (Some(*c), pi + 1),
            None => (Some('\0'), pi), // cannot match: forces backtracking
        };
        if pi < p.len() && lit.is_none_or(|c| c == t[ti]) {
            pi = next;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A boolean as filters compare it.
pub fn b(v: bool) -> Vec<String> {
    vec![v.to_string()]
}

pub fn one(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob("default", "default"));
        assert!(!glob("default", "defaults"));
        assert!(glob("def*", "default"));
        assert!(glob("*a*t", "default"));
        assert!(glob("d?fault", "default"));
        assert!(glob("*", ""));
        assert!(!glob("?", ""));
        assert!(glob("a\\*b", "a*b"));
        assert!(!glob("a\\*b", "axb"));
        assert!(glob("us-east-1*", "us-east-1a"));
    }

    #[test]
    fn filters_and_or() {
        let filter = |name: &str, values: &[&str]| Filter {
            name: Some(name.into()),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        };
        let input = [
            filter("vpc-id", &["vpc-1", "vpc-2"]),
            filter("tag:Name", &["web*"]),
        ];
        let f = Filters::parse(Some(&input), &["vpc-id"]).unwrap();
        let tags = vec![json!({"Key": "Name", "Value": "web-1"})];
        assert!(f.matches(&tags, |_| one("vpc-2")));
        assert!(!f.matches(&tags, |_| one("vpc-3")));
        assert!(!f.matches(&[], |_| one("vpc-1")));
        let err = Filters::parse(Some(&[filter("nope", &["x"])]), &["vpc-id"])
            .err()
            .unwrap();
        assert_eq!(err.code, "InvalidParameterValue");
        assert_eq!(err.message, "The filter 'nope' is invalid");
    }
}
