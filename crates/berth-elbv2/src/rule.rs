//! Listener rules of application load balancers: CreateRule, DescribeRules (with the
//! listener's default rule), ModifyRule, DeleteRule, SetRulePriorities. Conditions are
//! checked with AWS's character sets and limits.

use crate::common::*;
use crate::listener::{self, check_actions, forward_tgs};
use crate::tg::{self, Usage};
use berth_model::elbv2::{
    self as model,
    rule::{HttpHeaderConfig, KeyValue, QueryStringConfig, Values},
    Condition, Extra,
};
use berth_store::Record;
use berth_types::elbv2;
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Condition values per rule, and wildcards per rule (AWS's quotas).
pub const MAX_CONDITION_VALUES: usize = 5;
pub const MAX_WILDCARDS: usize = 5;
/// Rules per application load balancer, default rules not counted.
pub const MAX_RULES: usize = 100;

pub enum RuleRef {
    Rule { rule: Record, listener: Record },
    Default { listener: Record },
}

impl RuleRef {
    pub fn listener(&self) -> &Record {
        match self {
            RuleRef::Rule { listener, .. } | RuleRef::Default { listener } => listener,
        }
    }
}

pub fn get(s: &Scope, arn: &str) -> ApiResult<RuleRef> {
    let Some(Arn::Rule {
        lb_id,
        listener_id,
        id,
    }) = parse_arn(arn)
    else {
        return Err(bad_arn(arn, "rule"));
    };
    let listener = s
        .get(LISTENER, &format!("{lb_id}/{listener_id}"))
        .filter(|l| arn.starts_with(&format!("{}/", default_rule_prefix(&l.value))))
        .ok_or_else(rule_not_found)?;
    if listener.value["DefaultRuleId"] == id {
        return Ok(RuleRef::Default { listener });
    }
    let rule = s
        .get(RULE, &format!("{listener_id}/{id}"))
        .filter(|r| r.value["Rule"]["RuleArn"] == arn)
        .ok_or_else(rule_not_found)?;
    Ok(RuleRef::Rule { rule, listener })
}

/// `arn:...:listener-rule/app/NAME/LBID/LISTENERID`, the prefix of a listener's rule ARNs.
fn default_rule_prefix(listener: &Value) -> String {
    berth_model::elbv2::arn::rule_arn_prefix(str_of(&listener["Listener"], "ListenerArn"))
}

/// The model's `Rule` for a listener's default rule.
pub fn render_default(listener: &Value) -> Value {
    json!({
        "RuleArn": format!("{}/{}", default_rule_prefix(listener), str_of(listener, "DefaultRuleId")),
        "Priority": "default",
        "Conditions": [],
        "Actions": listener["Listener"]["DefaultActions"],
        "IsDefault": true,
    })
}

fn render(r: &RuleRef) -> Value {
    match r {
        RuleRef::Rule { rule, .. } => rule.value["Rule"].clone(),
        RuleRef::Default { listener } => render_default(&listener.value),
    }
}

// ---- conditions ----------------------------------------------------------------------------

const FIELDS: &[(&str, &str)] = &[
    ("host-header", "HostHeaderConfig"),
    ("path-pattern", "PathPatternConfig"),
    ("http-header", "HttpHeaderConfig"),
    ("http-request-method", "HttpRequestMethodConfig"),
    ("query-string", "QueryStringConfig"),
    ("source-ip", "SourceIpConfig"),
];

/// A condition's per-field config as the checks need it: whether it is there, its
/// `Values` (query-string's are pairs, read apart) and whether it has `RegexValues`.
struct Config<'a> {
    present: bool,
    values: Option<&'a [String]>,
    regex: bool,
}

/// The config of `c` for `field` (`FIELDS`), and whether each field's config is set.
fn config_of<'a>(c: &'a elbv2::RuleCondition, field: &str) -> Config<'a> {
    let none = Config {
        present: false,
        values: None,
        regex: false,
    };
    match field {
        "host-header" => c.host_header_config.as_ref().map_or(none, |h| Config {
            present: true,
            values: h.values.as_deref(),
            regex: h.regex_values.is_some(),
        }),
        "path-pattern" => c.path_pattern_config.as_ref().map_or(none, |h| Config {
            present: true,
            values: h.values.as_deref(),
            regex: h.regex_values.is_some(),
        }),
        "http-header" => c.http_header_config.as_ref().map_or(none, |h| Config {
            present: true,
            values: h.values.as_deref(),
            regex: h.regex_values.is_some(),
        }),
        "http-request-method" => c
            .http_request_method_config
            .as_ref()
            .map_or(none, |h| Config {
                present: true,
                values: h.values.as_deref(),
                regex: false,
            }),
        "query-string" => c.query_string_config.as_ref().map_or(none, |_| Config {
            present: true,
            values: None,
            regex: false,
        }),
        "source-ip" => c.source_ip_config.as_ref().map_or(none, |h| Config {
            present: true,
            values: h.values.as_deref(),
            regex: false,
        }),
        _ => none,
    }
}

fn check_strings(
    field: &str,
    values: &[String],
    allowed: impl Fn(char) -> bool,
    max: usize,
) -> ApiResult<()> {
    if values.is_empty() {
        return Err(validation(format!(
            "A '{field}' condition must have at least one value"
        )));
    }
    for v in values {
        if v.is_empty() {
            return Err(validation(format!(
                "The value of a '{field}' condition cannot be empty"
            )));
        }
        if v.chars().count() > max {
            return Err(validation(format!(
                "The '{field}' condition value '{v}' is longer than {max} characters"
            )));
        }
        if let Some(c) = v.chars().find(|c| !allowed(*c)) {
            return Err(validation(format!(
                "The '{field}' condition value '{v}' contains the character '{c}', which is not allowed"
            )));
        }
    }
    Ok(())
}

fn check_cidr(v: &str) -> bool {
    let Some((addr, len)) = v.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    if let Ok(a) = addr.parse::<std::net::Ipv4Addr>() {
        let _ = a;
        return len <= 32;
    }
    addr.parse::<std::net::Ipv6Addr>().is_ok() && len <= 128
}

/// Check an application load balancer rule's conditions; returns them as AWS reports them.
pub fn check_conditions(list: &[elbv2::RuleCondition]) -> ApiResult<Value> {
    if list.is_empty() {
        return Err(validation("A rule must have at least one condition"));
    }
    let mut out = vec![];
    let mut once = std::collections::HashSet::new();
    let (mut total, mut wildcards) = (0usize, 0usize);
    for c in list {
        let Some(field) = c.field.as_deref() else {
            return Err(validation("A condition field must be specified"));
        };
        let Some((_, cfg_name)) = FIELDS.iter().find(|(f, _)| *f == field) else {
            return Err(validation(format!(
                "Condition field '{field}' must be one of host-header, path-pattern, http-header, http-request-method, query-string, source-ip"
            )));
        };
        for (f, other) in FIELDS {
            if *f != field && config_of(c, f).present {
                return Err(validation(format!(
                    "{other} can only be specified for '{f}' conditions"
                )));
            }
        }
        let config = config_of(c, field);
        if c.regex_values.is_some() || config.regex {
            return Err(not_supported("Regular expression conditions (RegexValues)"));
        }
        if matches!(
            field,
            "host-header" | "path-pattern" | "http-request-method" | "source-ip"
        ) && !once.insert(field)
        {
            return Err(validation(format!(
                "A rule can have at most one '{field}' condition"
            )));
        }
        let legacy = c.values.as_deref();
        let cfg = config.present;
        if legacy.is_some() && !matches!(field, "host-header" | "path-pattern") {
            return Err(validation(format!(
                "Values cannot be specified for '{field}' conditions; use {cfg_name}"
            )));
        }
        if legacy.is_some() && cfg {
            return Err(validation(format!(
                "Values and {cfg_name} cannot both be specified"
            )));
        }
        let values: Vec<String> = match (legacy, cfg) {
            (Some(v), _) => v.to_vec(),
            (None, true) => config.values.unwrap_or_default().to_vec(),
            (None, false) => {
                return Err(validation(format!(
                    "A '{field}' condition must specify {cfg_name}"
                )))
            }
        };
        let count_wild = |vs: &[String]| {
            vs.iter()
                .map(|v| v.matches(['*', '?']).count())
                .sum::<usize>()
        };
        let n = match field {
            "host-header" => {
                check_strings(
                    field,
                    &values,
                    |c| c.is_ascii_alphanumeric() || "-.*?".contains(c),
                    128,
                )?;
                for v in &values {
                    let last = v.rsplit('.').next().unwrap_or("");
                    if !v.contains('.')
                        || !last
                            .chars()
                            .all(|c| c.is_ascii_alphabetic() || c == '*' || c == '?')
                    {
                        return Err(validation(format!(
                            "The host-header value '{v}' must contain a '.' and only letters after the last '.'"
                        )));
                    }
                }
                wildcards += count_wild(&values);
                total += values.len();
                Condition::HostHeader {
                    legacy: Some(values.clone()),
                    config: Values::new(values),
                    extra: Extra::new(),
                }
            }
            "path-pattern" => {
                check_strings(
                    field,
                    &values,
                    |c| c.is_ascii_alphanumeric() || "_-.$/~\"'@:+&*?".contains(c),
                    128,
                )?;
                wildcards += count_wild(&values);
                total += values.len();
                Condition::PathPattern {
                    legacy: Some(values.clone()),
                    config: Values::new(values),
                    extra: Extra::new(),
                }
            }
            "http-header" => {
                let name = c
                    .http_header_config
                    .as_ref()
                    .and_then(|h| h.http_header_name.as_deref())
                    .unwrap_or("");
                let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if name.is_empty() || name.len() > 40 || !name.chars().all(token) {
                    return Err(validation(format!(
                        "HTTP header name '{name}' must be 1 to 40 characters of RFC 7230 token characters"
                    )));
                }
                if name.eq_ignore_ascii_case("host") {
                    return Err(validation(
                        "An http-header condition cannot match the Host header; use a host-header condition",
                    ));
                }
                check_strings(field, &values, |c| !c.is_control(), 128)?;
                wildcards += count_wild(&values);
                total += values.len();
                Condition::HttpHeader {
                    config: HttpHeaderConfig {
                        name: name.to_string(),
                        values,
                        extra: Extra::new(),
                    },
                    extra: Extra::new(),
                }
            }
            "http-request-method" => {
                check_strings(
                    field,
                    &values,
                    |c| c.is_ascii_uppercase() || c == '-' || c == '_',
                    40,
                )?;
                total += values.len();
                Condition::HttpRequestMethod {
                    config: Values::new(values),
                    extra: Extra::new(),
                }
            }
            "query-string" => {
                let pairs = c
                    .query_string_config
                    .as_ref()
                    .and_then(|q| q.values.as_deref())
                    .unwrap_or_default();
                if pairs.is_empty() {
                    return Err(validation(
                        "A 'query-string' condition must have at least one value",
                    ));
                }
                let mut norm = vec![];
                for p in pairs {
                    let v = p.value.as_deref().unwrap_or("");
                    if v.is_empty() {
                        return Err(validation(
                            "The value of a 'query-string' condition cannot be empty",
                        ));
                    }
                    let mut strs = vec![v.to_string()];
                    let key = p.key.clone();
                    strs.extend(key.clone());
                    let n = KeyValue {
                        key,
                        value: v.to_string(),
                        extra: Extra::new(),
                    };
                    check_strings(field, &strs, |c| !c.is_control() && c != ' ', 128)?;
                    wildcards += count_wild(&strs);
                    norm.push(n);
                }
                total += pairs.len();
                Condition::QueryString {
                    config: QueryStringConfig {
                        values: norm,
                        extra: Extra::new(),
                    },
                    extra: Extra::new(),
                }
            }
            _ => {
                if c.source_ip_config
                    .as_ref()
                    .is_some_and(|s| s.ip_address_type.is_some())
                {
                    return Err(validation(
                        "IpAddressType can only be specified for Network Load Balancer rules",
                    ));
                }
                if values.is_empty() {
                    return Err(validation(
                        "A 'source-ip' condition must have at least one value",
                    ));
                }
                if let Some(v) = values.iter().find(|v| !check_cidr(v)) {
                    return Err(validation(format!(
                        "The source-ip condition value '{v}' is not a valid CIDR block"
                    )));
                }
                total += values.len();
                Condition::SourceIp {
                    config: Values::new(values),
                    extra: Extra::new(),
                }
            }
        };
        out.push(n);
    }
    if total > MAX_CONDITION_VALUES {
        return Err(validation(format!(
            "A rule can only have '{MAX_CONDITION_VALUES}' condition values"
        )));
    }
    if wildcards > MAX_WILDCARDS {
        return Err(validation(format!(
            "A rule can only have '{MAX_WILDCARDS}' wildcards"
        )));
    }
    Ok(model::to_value(&out))
}

// ---- operations ----------------------------------------------------------------------------

/// A listener's record read as berth-model's.
fn listener_of(listener: &Record) -> ApiResult<model::Listener> {
    record::<model::ListenerRecord>(&listener.value).map(|r| r.listener)
}

/// A rule's priority as its record keeps it (a number, or `default`).
fn priority_of(rule: &Record) -> ApiResult<String> {
    record::<model::RuleRecord>(&rule.value).map(|r| r.rule.priority)
}

fn lb_of(s: &Scope, listener: &Record) -> ApiResult<Record> {
    crate::lb::get(s, &listener_of(listener)?.load_balancer_arn)
}

fn check_app_listener(listener: &Record) -> ApiResult<()> {
    let p = listener_of(listener)?.protocol;
    if !tg::is_http(&p) {
        return Err(not_supported(format!(
            "Rules on {p} listeners of Network Load Balancers"
        )));
    }
    Ok(())
}

fn priority_in_use(p: i64) -> ApiError {
    ApiError::client(
        "PriorityInUse",
        format!("Priority '{p}' is currently in use"),
    )
}

pub fn create(s: &Scope, input: elbv2::CreateRuleInput) -> ApiResult<elbv2::CreateRuleOutput> {
    let listener_arn = input.listener_arn.as_str();
    let priority = i64::from(input.priority);
    if input.transforms.is_some() {
        return Err(not_supported("Rule transforms"));
    }
    let tags = request_tags(input.tags.as_deref().unwrap_or_default())?;
    let id = new_id();
    commit(s.store, || {
        let listener = listener::get(s, listener_arn)?;
        check_app_listener(&listener)?;
        let conditions = check_conditions(&input.conditions)?;
        let lb_rec = lb_of(s, &listener)?;
        let lb = &lb_rec.value["LoadBalancer"];
        let lb_arn = record::<model::LbRecord>(&lb_rec.value)?.load_balancer.arn;
        let protocol = listener_of(&listener)?.protocol;
        let actions = json!(check_actions(s, lb, &protocol, &input.actions)?);
        let lid = crate::lb::id_of(listener_arn);
        for r in s.list(RULE, &format!("{lid}/")) {
            if priority_of(&r)?.parse::<i64>() == Ok(priority) {
                return Err(priority_in_use(priority));
            }
        }
        let lb_id = crate::lb::id_of(&lb_arn);
        let mut count = 0;
        for l in s.list(LISTENER, &format!("{lb_id}/")) {
            let lid = crate::lb::id_of(&listener_of(&l)?.arn).to_string();
            count += s.list(RULE, &format!("{lid}/")).len();
        }
        if count >= MAX_RULES {
            return Err(ApiError::client(
                "TooManyRules",
                format!("A load balancer can have at most {MAX_RULES} rules"),
            ));
        }
        let arn = format!("{}/{id}", default_rule_prefix(&listener.value));
        let rule = json!({
            "RuleArn": arn, "Priority": priority.to_string(), "Conditions": conditions,
            "Actions": actions, "IsDefault": false,
        });
        let mut plan = Plan::new(elbv2::CreateRuleOutput {
            rules: Some(vec![shape(&rule)?]),
        });
        plan.put(&listener, (*listener.value).clone());
        plan.create(
            s.key(RULE, &format!("{lid}/{id}")),
            json!({"Rule": rule, "Tags": tags.clone()}),
        );
        let usage = Usage {
            user: arn.clone(),
            lb_arn,
            old: vec![],
            new: forward_tgs(&actions),
        };
        tg::apply_usage(s, &[usage], &mut plan)?;
        Ok(plan)
    })
}

/// Rules in priority order, the default rule last.
fn sort_key(r: &elbv2::Rule) -> String {
    match r.priority.as_deref().and_then(|p| p.parse::<u32>().ok()) {
        Some(p) => format!("{p:05}"),
        None => "99999".into(),
    }
}

pub fn describe(
    s: &Scope,
    input: elbv2::DescribeRulesInput,
) -> ApiResult<elbv2::DescribeRulesOutput> {
    let arns = input.rule_arns.unwrap_or_default();
    let listener_arn = input.listener_arn.as_deref();
    let mut found: Vec<elbv2::Rule> = match (listener_arn, arns.is_empty()) {
        (Some(_), false) => {
            return Err(validation(
                "Rule ARNs and a listener ARN cannot be specified at the same time",
            ))
        }
        (None, true) => {
            return Err(validation(
                "You must specify either rule ARNs or a listener ARN",
            ))
        }
        (Some(l), true) => {
            let listener = listener::get(s, l)?;
            let mut v: Vec<elbv2::Rule> = s
                .list(RULE, &format!("{}/", crate::lb::id_of(l)))
                .iter()
                .map(|r| shape(&r.value["Rule"]))
                .collect::<ApiResult<_>>()?;
            v.push(shape(&render_default(&listener.value))?);
            v
        }
        (None, false) => arns
            .iter()
            .map(|a| shape(&render(&get(s, a)?)))
            .collect::<ApiResult<_>>()?,
    };
    let key = |r: &elbv2::Rule| format!("{}{}", sort_key(r), r.rule_arn.as_deref().unwrap_or(""));
    found.sort_by_key(key);
    found.dedup_by(|a, b| a.rule_arn == b.rule_arn);
    let p = page(found, key, input.page_size, input.marker.as_deref())?;
    Ok(elbv2::DescribeRulesOutput {
        rules: Some(p.items),
        next_marker: p.next_token,
    })
}

pub fn modify(s: &Scope, input: elbv2::ModifyRuleInput) -> ApiResult<elbv2::ModifyRuleOutput> {
    let arn = input.rule_arn.as_str();
    if input.transforms.is_some() {
        return Err(not_supported("Rule transforms"));
    }
    commit(s.store, || {
        let r = get(s, arn)?;
        let listener = r.listener();
        let lb_rec = lb_of(s, listener)?;
        let lb = &lb_rec.value["LoadBalancer"];
        let l = listener_of(listener)?;
        let actions = input
            .actions
            .as_deref()
            .map(|a| check_actions(s, lb, &l.protocol, a).map(|a| json!(a)))
            .transpose()?;
        let lb_arn = l.load_balancer_arn;
        let mut plan = Plan::new(elbv2::ModifyRuleOutput { rules: None });
        match &r {
            RuleRef::Default { listener } => {
                if input.conditions.is_some() {
                    return Err(not_permitted(
                        "The conditions of a default rule cannot be modified",
                    ));
                }
                let mut v = (*listener.value).clone();
                if let Some(a) = &actions {
                    let usage = Usage {
                        user: l.arn.clone(),
                        lb_arn,
                        old: forward_tgs(&v["Listener"]["DefaultActions"]),
                        new: forward_tgs(a),
                    };
                    v["Listener"]["DefaultActions"] = a.clone();
                    tg::apply_usage(s, &[usage], &mut plan)?;
                }
                plan.result.rules = Some(vec![shape(&render_default(&v))?]);
                plan.put(listener, v);
            }
            RuleRef::Rule { rule, .. } => {
                check_app_listener(listener)?;
                let mut v = (*rule.value).clone();
                if let Some(c) = &input.conditions {
                    v["Rule"]["Conditions"] = check_conditions(c)?;
                }
                if let Some(a) = &actions {
                    let usage = Usage {
                        user: arn.to_string(),
                        lb_arn,
                        old: forward_tgs(&v["Rule"]["Actions"]),
                        new: forward_tgs(a),
                    };
                    v["Rule"]["Actions"] = a.clone();
                    tg::apply_usage(s, &[usage], &mut plan)?;
                }
                plan.result.rules = Some(vec![shape(&v["Rule"])?]);
                plan.put(rule, v);
            }
        }
        Ok(plan)
    })
}

pub fn delete(s: &Scope, input: elbv2::DeleteRuleInput) -> ApiResult<elbv2::DeleteRuleOutput> {
    let arn = input.rule_arn.as_str();
    commit(s.store, || {
        let RuleRef::Rule { rule, listener } = get(s, arn)? else {
            return Err(not_permitted(
                "The default rule of a listener cannot be deleted",
            ));
        };
        let mut plan = Plan::new(elbv2::DeleteRuleOutput {});
        plan.delete(&rule);
        let usage = Usage {
            user: arn.to_string(),
            lb_arn: listener_of(&listener)?.load_balancer_arn,
            old: forward_tgs(&rule.value["Rule"]["Actions"]),
            new: vec![],
        };
        tg::release(s, &[usage], &mut plan)?;
        Ok(plan)
    })
}

pub fn set_priorities(
    s: &Scope,
    input: elbv2::SetRulePrioritiesInput,
) -> ApiResult<elbv2::SetRulePrioritiesOutput> {
    let pairs = &input.rule_priorities;
    commit(s.store, || {
        // New priority per rule, grouped by listener.
        let mut changes: BTreeMap<String, (Record, Vec<(Record, i64)>)> = BTreeMap::new();
        for p in pairs {
            let arn = p.rule_arn.as_deref().unwrap_or("");
            let Some(prio) = p.priority.map(i64::from) else {
                return Err(validation(format!(
                    "A priority must be specified for rule '{arn}'"
                )));
            };
            let RuleRef::Rule { rule, listener } = get(s, arn)? else {
                return Err(not_permitted(
                    "The priority of a default rule cannot be changed",
                ));
            };
            let entry = changes
                .entry(listener.key.clone())
                .or_insert_with(|| (listener.clone(), vec![]));
            if entry.1.iter().any(|(r, _)| r.key == rule.key) {
                return Err(validation(format!(
                    "Rule '{arn}' is specified more than once"
                )));
            }
            entry.1.push((rule, prio));
        }
        let mut plan = Plan::new(elbv2::SetRulePrioritiesOutput { rules: None });
        let mut out = vec![];
        for (listener, updates) in changes.values() {
            let listener_arn = listener_of(listener)?.arn;
            let lid = crate::lb::id_of(&listener_arn);
            let mut taken: BTreeMap<i64, String> = BTreeMap::new();
            for r in s.list(RULE, &format!("{lid}/")) {
                let prio = match updates.iter().find(|(u, _)| u.key == r.key) {
                    Some((_, p)) => *p,
                    None => priority_of(&r)?.parse().unwrap_or(0),
                };
                if taken.insert(prio, r.key.clone()).is_some() {
                    return Err(priority_in_use(prio));
                }
            }
            plan.put(listener, (*listener.value).clone());
            for (rule, prio) in updates {
                let mut v = (*rule.value).clone();
                v["Rule"]["Priority"] = json!(prio.to_string());
                out.push(shape::<elbv2::Rule>(&v["Rule"])?);
                plan.put(rule, v);
            }
        }
        out.sort_by_key(sort_key);
        plan.result.rules = Some(out);
        Ok(plan)
    })
}
