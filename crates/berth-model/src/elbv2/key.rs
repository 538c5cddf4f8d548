//! Store keys of ELBv2 records: `/{account}/{region}/elbv2/{kind}/{id}`, where id is
//! `{name}` (lb, tg), `{tg id}` (targets), `{lb id}/{listener id}` (listener) and
//! `{listener id}/{rule id}` (rule).

/// What every ELBv2 key holds after its account and region.
pub const MARK: &str = "/elbv2/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lb,
    Tg,
    Targets,
    Listener,
    Rule,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lb => "lb",
            Kind::Tg => "tg",
            Kind::Targets => "targets",
            Kind::Listener => "listener",
            Kind::Rule => "rule",
        }
    }
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "lb" => Kind::Lb,
            "tg" => Kind::Tg,
            "targets" => Kind::Targets,
            "listener" => Kind::Listener,
            "rule" => Kind::Rule,
            _ => return None,
        })
    }
}

/// `/{account}/{region}/elbv2/`: every ELBv2 record of one account and region.
pub fn scope_prefix(account: &str, region: &str) -> String {
    format!("/{account}/{region}{MARK}")
}

/// `/{account}/{region}/elbv2/{kind}/{id}`; an id ending in `/` (or empty) is a prefix.
pub fn key(account: &str, region: &str, kind: Kind, id: &str) -> String {
    format!("/{account}/{region}{MARK}{}/{id}", kind.as_str())
}

/// The records of `kind` under a scope prefix from [`scope_prefix`].
pub fn kind_prefix(scope_prefix: &str, kind: Kind) -> String {
    format!("{scope_prefix}{}/", kind.as_str())
}

pub fn lb_key(account: &str, region: &str, name: &str) -> String {
    key(account, region, Kind::Lb, name)
}
pub fn tg_key(account: &str, region: &str, name: &str) -> String {
    key(account, region, Kind::Tg, name)
}
pub fn targets_key(account: &str, region: &str, tg_id: &str) -> String {
    key(account, region, Kind::Targets, tg_id)
}
pub fn listener_key(account: &str, region: &str, lb_id: &str, listener_id: &str) -> String {
    key(
        account,
        region,
        Kind::Listener,
        &format!("{lb_id}/{listener_id}"),
    )
}
pub fn rule_key(account: &str, region: &str, listener_id: &str, rule_id: &str) -> String {
    key(
        account,
        region,
        Kind::Rule,
        &format!("{listener_id}/{rule_id}"),
    )
}

/// A parsed ELBv2 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub kind: Kind,
    /// Everything after `{kind}/` (see the module's list).
    pub id: &'a str,
}

impl<'a> Key<'a> {
    /// The first part of a two-part id: a listener's load balancer id, a rule's listener id.
    pub fn parent_id(&self) -> &'a str {
        self.id.split('/').next().unwrap_or("")
    }
    /// The last part of the id: the record's own id (or name).
    pub fn own_id(&self) -> &'a str {
        self.id.rsplit('/').next().unwrap_or("")
    }
}

pub fn parse(key: &str) -> Option<Key<'_>> {
    let rest = key.strip_prefix('/')?;
    let (account, rest) = rest.split_once('/')?;
    let (region, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix(&MARK[1..])?;
    let (kind, id) = rest.split_once('/')?;
    if account.is_empty() || region.is_empty() {
        return None;
    }
    Some(Key {
        account,
        region,
        kind: Kind::parse(kind)?,
        id,
    })
}

/// `/{account}/{region}/elbv2/` of any key under it (the data plane groups events by it).
pub fn scope_prefix_of(key: &str) -> Option<String> {
    let at = key.find(MARK)?;
    let head = &key[..at];
    (head.matches('/').count() == 2).then(|| format!("{head}{MARK}"))
}

/// Whether `key` is a targets record's (ECS's scheduler follows their health).
pub fn is_targets_key(key: &str) -> bool {
    parse(key).is_some_and(|k| k.kind == Kind::Targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = rule_key("000000000000", "us-east-1", "aaaa", "bbbb");
        assert_eq!(k, "/000000000000/us-east-1/elbv2/rule/aaaa/bbbb");
        let p = parse(&k).unwrap();
        assert_eq!(
            (p.kind, p.parent_id(), p.own_id()),
            (Kind::Rule, "aaaa", "bbbb")
        );
        assert_eq!(
            scope_prefix_of(&k).as_deref(),
            Some("/000000000000/us-east-1/elbv2/")
        );
        assert_eq!(
            kind_prefix(&scope_prefix("1", "r"), Kind::Targets),
            "/1/r/elbv2/targets/"
        );
        assert!(is_targets_key(&targets_key("1", "r", "ab")));
        assert!(!is_targets_key("/1/r/ecs/task/x"));
        assert!(scope_prefix_of("/a/elbv2/lb/x").is_none());
    }
}
