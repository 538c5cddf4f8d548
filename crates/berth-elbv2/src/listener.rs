//! Listeners and the actions listeners and rules share: CreateListener, DescribeListeners,
//! ModifyListener, DeleteListener (with its rules).

use crate::common::*;
use crate::tg::{self, is_http, Usage};
use berth_model::elbv2 as model;
use berth_store::Record;
use berth_types::elbv2;
use berth_wire::{ApiError, ApiResult};
use serde_json::{json, Value};

pub const MAX_LISTENERS: usize = 50;

pub fn get(s: &Scope, arn: &str) -> ApiResult<Record> {
    match parse_arn(arn) {
        Some(Arn::Listener { lb_id, id }) => s
            .get(LISTENER, &format!("{lb_id}/{id}"))
            .filter(|r| r.value["Listener"]["ListenerArn"] == arn)
            .ok_or_else(listener_not_found),
        _ => Err(bad_arn(arn, "listener")),
    }
}

/// The target groups `actions` (stored or checked actions) forward to.
pub fn forward_tgs(actions: &Value) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for a in actions.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let Ok(a) = model::from_value::<model::Action>(a) else {
            continue;
        };
        out.extend(a.forward_groups().into_iter().map(|(g, _)| g.to_string()));
    }
    out.sort();
    out.dedup();
    out
}

fn compatible(listener: &str, group: &str) -> bool {
    match listener {
        "HTTP" | "HTTPS" => is_http(group),
        "TCP" => matches!(group, "TCP" | "TCP_UDP"),
        "TLS" => matches!(group, "TCP" | "TLS"),
        "UDP" => matches!(group, "UDP" | "TCP_UDP"),
        "TCP_UDP" => group == "TCP_UDP",
        _ => false,
    }
}

fn invalid_action(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidLoadBalancerAction", msg)
}

/// An action of type `ty` with nothing else set.
fn action(ty: elbv2::ActionTypeEnum) -> elbv2::Action {
    elbv2::Action {
        r#type: ty,
        target_group_arn: None,
        forward_config: None,
        redirect_config: None,
        fixed_response_config: None,
        authenticate_oidc_config: None,
        authenticate_cognito_config: None,
        jwt_validation_config: None,
        order: None,
    }
}

/// Actions as a record keeps them (a listener's `DefaultActions`, a rule's `Actions`),
/// read as the model's.
pub fn stored_actions(v: &Value) -> ApiResult<Vec<elbv2::Action>> {
    shapes(v.as_array().map_or(&[][..], Vec::as_slice))
}

/// Check `actions` for a listener with `protocol` on load balancer `lb` (the model's
/// `LoadBalancer`), as AWS does; returns them as AWS reports them (forward configs and
/// redirect components filled in).
pub fn check_actions(
    s: &Scope,
    lb: &Value,
    protocol: &str,
    actions: &[elbv2::Action],
) -> ApiResult<Vec<elbv2::Action>> {
    if actions.is_empty() {
        return Err(validation("At least one action must be specified"));
    }
    let app = lb["Type"] != "network";
    let mut out = vec![];
    for a in actions {
        let ty = a.r#type.as_str();
        let configs = [
            ("forward", "ForwardConfig", a.forward_config.is_some()),
            ("redirect", "RedirectConfig", a.redirect_config.is_some()),
            (
                "fixed-response",
                "FixedResponseConfig",
                a.fixed_response_config.is_some(),
            ),
            (
                "authenticate-oidc",
                "AuthenticateOidcConfig",
                a.authenticate_oidc_config.is_some(),
            ),
            (
                "authenticate-cognito",
                "AuthenticateCognitoConfig",
                a.authenticate_cognito_config.is_some(),
            ),
            (
                "jwt-validation",
                "JwtValidationConfig",
                a.jwt_validation_config.is_some(),
            ),
        ];
        for (t, cfg, set) in configs {
            if t != ty && set {
                return Err(validation(format!(
                    "{cfg} can only be specified for '{t}' actions"
                )));
            }
        }
        if ty != "forward" && a.target_group_arn.is_some() {
            return Err(validation(
                "A target group ARN can only be specified for 'forward' actions",
            ));
        }
        let mut n = match ty {
            "forward" => check_forward(s, lb, protocol, a)?,
            "redirect" | "fixed-response" if !app => {
                return Err(invalid_action(format!(
                    "'{ty}' actions are supported only by Application Load Balancers"
                )))
            }
            "redirect" => check_redirect(a)?,
            "fixed-response" => check_fixed(a)?,
            other => return Err(not_supported(format!("'{other}' actions"))),
        };
        n.order = a.order;
        out.push(n);
    }
    if out.len() > 1 {
        return Err(ApiError::client(
            "TooManyActions",
            "Only one of forward, redirect or fixed-response can be specified, as the last action",
        ));
    }
    Ok(out)
}

fn check_forward(
    s: &Scope,
    lb: &Value,
    protocol: &str,
    a: &elbv2::Action,
) -> ApiResult<elbv2::Action> {
    let app = lb["Type"] != "network";
    let single = a.target_group_arn.as_deref();
    let fc = a.forward_config.as_ref();
    let tuples: Vec<elbv2::TargetGroupTuple> = match (single, fc) {
        (None, None) => {
            return Err(validation(
                "A target group ARN must be specified for a 'forward' action",
            ))
        }
        (Some(arn), None) => vec![elbv2::TargetGroupTuple {
            target_group_arn: Some(arn.to_string()),
            weight: Some(1),
        }],
        (_, Some(fc)) => {
            let list = fc.target_groups.as_deref().unwrap_or_default();
            if list.is_empty() {
                return Err(validation(
                    "A forward config must specify at least one target group",
                ));
            }
            if let Some(arn) = single {
                if list.len() != 1 || list[0].target_group_arn.as_deref() != Some(arn) {
                    return Err(validation(
                        "The target group ARN and the forward config's target groups must be the same",
                    ));
                }
            }
            list.iter()
                .map(|t| elbv2::TargetGroupTuple {
                    target_group_arn: t.target_group_arn.clone(),
                    weight: Some(t.weight.unwrap_or(1)),
                })
                .collect()
        }
    };
    let max = if app { 5 } else { 1 };
    if tuples.len() > max {
        return Err(ApiError::client(
            "TooManyTargetGroups",
            format!("A forward action can have at most {max} target groups on this load balancer"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for t in &tuples {
        let arn = t.target_group_arn.as_deref().unwrap_or("");
        if arn.is_empty() {
            return Err(validation(
                "Each target group of a forward config must have an ARN",
            ));
        }
        if !seen.insert(arn) {
            return Err(validation(format!(
                "Target group '{arn}' is specified more than once"
            )));
        }
        let w = t.weight.unwrap_or(-1);
        if !(0..=999).contains(&w) {
            return Err(validation(format!(
                "Target group weight {w} is not between 0 and 999"
            )));
        }
        let g = record::<model::TgRecord>(&tg::get(s, arn)?.value)?.target_group;
        let g_protocol = g.protocol.as_deref().unwrap_or("");
        if !compatible(protocol, g_protocol) {
            return Err(ApiError::client(
                "IncompatibleProtocols",
                format!(
                    "The listener protocol '{protocol}' is not compatible with the protocol '{g_protocol}' of target group '{arn}'"
                ),
            ));
        }
        let (g_vpc, lb_vpc) = (g.vpc_id.as_deref(), lb["VpcId"].as_str());
        if g_vpc != lb_vpc {
            return Err(invalid_config(format!(
                "Target group '{arn}' is in VPC '{}', not in the load balancer's VPC '{}'",
                g_vpc.unwrap_or(""),
                lb_vpc.unwrap_or("")
            )));
        }
    }
    let mut sticky = elbv2::TargetGroupStickinessConfig {
        enabled: Some(false),
        duration_seconds: None,
    };
    if let Some(st) = fc.and_then(|f| f.target_group_stickiness_config.as_ref()) {
        if st.enabled == Some(true) {
            if !app {
                return Err(invalid_config(
                    "Target group stickiness is supported only by Application Load Balancers",
                ));
            }
            let d = st.duration_seconds;
            if !d.is_some_and(|d| (1..=604_800).contains(&d)) {
                return Err(validation(
                    "The stickiness duration must be between 1 and 604800 seconds when target group stickiness is enabled",
                ));
            }
            sticky = elbv2::TargetGroupStickinessConfig {
                enabled: Some(true),
                duration_seconds: d,
            };
        }
    }
    let mut out = action(elbv2::ActionTypeEnum::Forward);
    if tuples.len() == 1 {
        out.target_group_arn = tuples[0].target_group_arn.clone();
    }
    out.forward_config = Some(elbv2::ForwardActionConfig {
        target_groups: Some(tuples),
        target_group_stickiness_config: Some(sticky),
    });
    Ok(out)
}

fn check_redirect(a: &elbv2::Action) -> ApiResult<elbv2::Action> {
    let Some(c) = &a.redirect_config else {
        return Err(validation(
            "A redirect config must be specified for a 'redirect' action",
        ));
    };
    let protocol = c.protocol.as_deref().unwrap_or("#{protocol}");
    if !matches!(protocol, "HTTP" | "HTTPS" | "#{protocol}") {
        return Err(validation(format!(
            "Redirect protocol '{protocol}' must be HTTP, HTTPS or #{{protocol}}"
        )));
    }
    let port = c.port.as_deref().unwrap_or("#{port}");
    if port != "#{port}" && !port.parse::<u16>().is_ok_and(|p| p >= 1) {
        return Err(validation(format!(
            "Redirect port '{port}' must be between 1 and 65535 or #{{port}}"
        )));
    }
    let host = c.host.as_deref().unwrap_or("#{host}");
    let path = c.path.as_deref().unwrap_or("/#{path}");
    if !path.starts_with('/') {
        return Err(validation(format!(
            "Redirect path '{path}' must start with a '/'"
        )));
    }
    let query = c.query.as_deref().unwrap_or("#{query}");
    if protocol == "#{protocol}" && port == "#{port}" && host == "#{host}" && path == "/#{path}" {
        return Err(invalid_action(
            "The redirect must change at least one of protocol, host, port or path, to avoid a redirect loop",
        ));
    }
    let mut out = action(elbv2::ActionTypeEnum::Redirect);
    out.redirect_config = Some(elbv2::RedirectActionConfig {
        protocol: Some(protocol.to_string()),
        port: Some(port.to_string()),
        host: Some(host.to_string()),
        path: Some(path.to_string()),
        query: Some(query.to_string()),
        status_code: c.status_code,
    });
    Ok(out)
}

fn check_fixed(a: &elbv2::Action) -> ApiResult<elbv2::Action> {
    let Some(c) = &a.fixed_response_config else {
        return Err(validation(
            "A fixed response config must be specified for a 'fixed-response' action",
        ));
    };
    let code = c.status_code.as_str();
    let b = code.as_bytes();
    if !(b.len() == 3 && matches!(b[0], b'2' | b'4' | b'5') && b.iter().all(u8::is_ascii_digit)) {
        return Err(validation(format!(
            "Fixed response status code '{code}' must be a 2XX, 4XX or 5XX code"
        )));
    }
    if let Some(ct) = c.content_type.as_deref() {
        const TYPES: &[&str] = &[
            "text/plain",
            "text/css",
            "text/html",
            "application/javascript",
            "application/json",
        ];
        if !TYPES.contains(&ct) {
            return Err(validation(format!(
                "Content type '{ct}' must be one of {}",
                TYPES.join(", ")
            )));
        }
    }
    let mut out = action(elbv2::ActionTypeEnum::FixedResponse);
    out.fixed_response_config = Some(elbv2::FixedResponseActionConfig {
        status_code: code.to_string(),
        content_type: c.content_type.clone(),
        message_body: c.message_body.clone(),
    });
    Ok(out)
}

/// What a listener request asks of TLS: certificates (and whether any), SslPolicy,
/// AlpnPolicy, MutualAuthentication.
struct Tls {
    certificates: Option<usize>,
    ssl_policy: bool,
    alpn_policy: bool,
    mutual_authentication: bool,
}

/// A listener's protocol checked against its load balancer's type.
fn check_protocol(lb: &Value, protocol: &str, tls: &Tls) -> ApiResult<()> {
    let app = lb["Type"] != "network";
    if matches!(protocol, "QUIC" | "TCP_QUIC") && !app {
        return Err(not_supported(format!("Listener protocol '{protocol}'")));
    }
    let ok = if app {
        is_http(protocol)
    } else {
        matches!(protocol, "TCP" | "TLS" | "UDP" | "TCP_UDP")
    };
    if !ok {
        return Err(ApiError::client(
            "UnsupportedProtocol",
            format!(
                "Protocol '{protocol}' is not supported by {} Load Balancers",
                if app { "Application" } else { "Network" }
            ),
        ));
    }
    let secure = protocol == "HTTPS" || protocol == "TLS";
    let certs = tls.certificates.is_some_and(|n| n > 0);
    if secure {
        if !certs {
            return Err(ApiError::client(
                "CertificateNotFound",
                format!("A certificate must be specified for {protocol} listeners"),
            ));
        }
        return Err(not_supported(format!(
            "{protocol} listeners (certificates; there is no ACM yet)"
        )));
    }
    for (p, set) in [
        ("Certificates", tls.certificates.is_some()),
        ("SslPolicy", tls.ssl_policy),
        ("AlpnPolicy", tls.alpn_policy),
        ("MutualAuthentication", tls.mutual_authentication),
    ] {
        // An empty certificate list on a plain listener is harmless.
        if set && (p != "Certificates" || certs) {
            return Err(validation(format!(
                "{p} can only be specified for HTTPS and TLS listeners"
            )));
        }
    }
    Ok(())
}

/// The host-port protocols a listener's port takes on the published address.
fn published_protocols(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "UDP" => &["udp"],
        "TCP_UDP" => &["tcp", "udp"],
        _ => &["tcp"],
    }
}

/// With `--publish-lb`, lease the listener's port on the host (in the same transaction as
/// the listener), refusing one a task or another listener holds or a host process uses.
/// An internal load balancer is never published.
fn lease_published_port<T>(
    s: &Scope,
    lb: &Value,
    listener_arn: &str,
    protocol: &str,
    port: i64,
    plan: &mut Plan<T>,
) -> ApiResult<()> {
    let Some(addr) = s.publish.filter(|_| lb["Scheme"] != "internal") else {
        return Ok(());
    };
    let port16 = u16::try_from(port).unwrap_or(0);
    for proto in published_protocols(protocol) {
        let key = berth_leases::ports::port_key(proto, port16);
        match s.store.get(&key) {
            Some(r) if r.value["owner"] == listener_arn => continue,
            Some(r) => {
                return Err(invalid_config(format!(
                "Port {port}/{proto} on the published address {addr} (--publish-lb) is held by {}",
                r.value["owner"].as_str().unwrap_or("another user")
            )))
            }
            None => {}
        }
        let free = match *proto {
            "udp" => std::net::UdpSocket::bind((addr, port16)).is_ok(),
            _ => std::net::TcpListener::bind((addr, port16)).is_ok(),
        };
        if !free {
            return Err(invalid_config(format!(
                "Port {port}/{proto} on the published address {addr} (--publish-lb) is in use by another process"
            )));
        }
        plan.create(key, json!({"owner": listener_arn}));
    }
    Ok(())
}

/// Give back the published ports a listener holds.
fn release_published_ports<T>(s: &Scope, listener: &Value, plan: &mut Plan<T>) {
    let port = u16::try_from(listener["Port"].as_i64().unwrap_or(0)).unwrap_or(0);
    for proto in published_protocols(str_of(listener, "Protocol")) {
        if let Some(r) = s.store.get(&berth_leases::ports::port_key(proto, port)) {
            if r.value["owner"] == listener["ListenerArn"] {
                plan.delete(&r);
            }
        }
    }
}

pub fn create(
    s: &Scope,
    input: elbv2::CreateListenerInput,
) -> ApiResult<elbv2::CreateListenerOutput> {
    let lb_arn = input.load_balancer_arn.as_str();
    let lb_rec = crate::lb::get(s, lb_arn)?;
    let lb = lb_rec.value["LoadBalancer"].clone();
    let Some(protocol) = input.protocol.map(|p| p.as_str()) else {
        return Err(validation("A listener protocol must be specified"));
    };
    let Some(port) = input.port.map(i64::from) else {
        return Err(validation("A listener port must be specified"));
    };
    let tls = Tls {
        certificates: input.certificates.as_ref().map(Vec::len),
        ssl_policy: input.ssl_policy.is_some(),
        alpn_policy: input.alpn_policy.is_some(),
        mutual_authentication: input.mutual_authentication.is_some(),
    };
    check_protocol(&lb, protocol, &tls)?;
    let actions = json!(check_actions(s, &lb, protocol, &input.default_actions)?);
    let tags = request_tags(input.tags.as_deref().unwrap_or_default())?;
    let lb_id = crate::lb::id_of(lb_arn);
    let id = new_id();
    let arn = berth_model::elbv2::arn::listener_arn(lb_arn, &id);
    let listener = json!({
        "ListenerArn": arn, "LoadBalancerArn": lb_arn, "Port": port, "Protocol": protocol,
        "DefaultActions": actions,
    });
    commit(s.store, || {
        let lb_rec = crate::lb::get(s, lb_arn)?;
        let existing = s.list(LISTENER, &format!("{lb_id}/"));
        let mut ports = vec![];
        for l in &existing {
            ports.push(record::<model::ListenerRecord>(&l.value)?.listener.port);
        }
        if ports.contains(&port) {
            return Err(ApiError::client(
                "DuplicateListener",
                format!("A listener already exists on port {port} of load balancer '{lb_arn}'"),
            ));
        }
        if existing.len() >= MAX_LISTENERS {
            return Err(ApiError::client(
                "TooManyListeners",
                format!("A load balancer can have at most {MAX_LISTENERS} listeners"),
            ));
        }
        let mut plan = Plan::new(elbv2::CreateListenerOutput {
            listeners: Some(vec![shape(&listener)?]),
        });
        plan.put(&lb_rec, (*lb_rec.value).clone());
        lease_published_port(s, &lb, &arn, protocol, port, &mut plan)?;
        plan.create(
            s.key(LISTENER, &format!("{lb_id}/{id}")),
            json!({"Listener": listener.clone(), "Tags": tags.clone(), "DefaultRuleId": new_id(), "DefaultRuleTags": []}),
        );
        let usage = Usage {
            user: arn.clone(),
            lb_arn: lb_arn.to_string(),
            old: vec![],
            new: forward_tgs(&actions),
        };
        tg::apply_usage(s, &[usage], &mut plan)?;
        Ok(plan)
    })
}

pub fn describe(
    s: &Scope,
    input: elbv2::DescribeListenersInput,
) -> ApiResult<elbv2::DescribeListenersOutput> {
    let arns = input.listener_arns.unwrap_or_default();
    let lb_arn = input.load_balancer_arn.as_deref();
    let mut found: Vec<elbv2::Listener> = match (lb_arn, arns.is_empty()) {
        (Some(_), false) => {
            return Err(validation(
                "Listener ARNs and a load balancer ARN cannot be specified at the same time",
            ))
        }
        (None, true) => {
            return Err(validation(
                "You must specify either listener ARNs or a load balancer ARN",
            ))
        }
        (Some(lb), true) => {
            crate::lb::get(s, lb)?;
            s.list(LISTENER, &format!("{}/", crate::lb::id_of(lb)))
                .iter()
                .map(|r| shape(&r.value["Listener"]))
                .collect::<ApiResult<_>>()?
        }
        (None, false) => arns
            .iter()
            .map(|a| shape(&get(s, a)?.value["Listener"]))
            .collect::<ApiResult<_>>()?,
    };
    let key = |l: &elbv2::Listener| {
        format!(
            "{:05}{}",
            l.port.unwrap_or(0),
            l.listener_arn.as_deref().unwrap_or("")
        )
    };
    found.sort_by_key(key);
    found.dedup_by(|a, b| a.listener_arn == b.listener_arn);
    let p = page(found, key, input.page_size, input.marker.as_deref())?;
    Ok(elbv2::DescribeListenersOutput {
        listeners: Some(p.items),
        next_marker: p.next_token,
    })
}

pub fn modify(
    s: &Scope,
    input: elbv2::ModifyListenerInput,
) -> ApiResult<elbv2::ModifyListenerOutput> {
    let arn = input.listener_arn.as_str();
    let tls = Tls {
        certificates: input.certificates.as_ref().map(Vec::len),
        ssl_policy: input.ssl_policy.is_some(),
        alpn_policy: input.alpn_policy.is_some(),
        mutual_authentication: input.mutual_authentication.is_some(),
    };
    commit(s.store, || {
        let rec = get(s, arn)?;
        let old = &rec.value["Listener"];
        let was = record::<model::ListenerRecord>(&rec.value)?.listener;
        let lb_arn = was.load_balancer_arn.as_str();
        let lb_rec = crate::lb::get(s, lb_arn)?;
        let lb = &lb_rec.value["LoadBalancer"];
        let protocol = input.protocol.map_or(was.protocol.as_str(), |p| p.as_str());
        check_protocol(lb, protocol, &tls)?;
        let actions = json!(match &input.default_actions {
            Some(a) => check_actions(s, lb, protocol, a)?,
            None => check_actions(s, lb, protocol, &stored_actions(&old["DefaultActions"])?)?,
        });
        let port = input.port.map_or(was.port, i64::from);
        let lb_id = crate::lb::id_of(lb_arn);
        let mut others = vec![];
        for l in s.list(LISTENER, &format!("{lb_id}/")) {
            if l.key != rec.key {
                others.push(record::<model::ListenerRecord>(&l.value)?.listener.port);
            }
        }
        if others.contains(&port) {
            return Err(ApiError::client(
                "DuplicateListener",
                format!("A listener already exists on port {port} of load balancer '{lb_arn}'"),
            ));
        }
        let mut v = (*rec.value).clone();
        v["Listener"]["Port"] = json!(port);
        v["Listener"]["Protocol"] = json!(protocol);
        v["Listener"]["DefaultActions"] = actions.clone();
        let mut plan = Plan::new(elbv2::ModifyListenerOutput {
            listeners: Some(vec![shape(&v["Listener"])?]),
        });
        plan.put(&lb_rec, (*lb_rec.value).clone());
        if was.port != port || was.protocol != protocol {
            release_published_ports(s, old, &mut plan);
            lease_published_port(
                s,
                &lb_rec.value["LoadBalancer"],
                arn,
                protocol,
                port,
                &mut plan,
            )?;
        }
        let usage = Usage {
            user: arn.to_string(),
            lb_arn: lb_arn.to_string(),
            old: forward_tgs(&old["DefaultActions"]),
            new: forward_tgs(&actions),
        };
        plan.put(&rec, v);
        tg::apply_usage(s, &[usage], &mut plan)?;
        Ok(plan)
    })
}

/// Plan deleting a listener and its rules; returns what they stop forwarding to.
pub fn plan_delete<T>(s: &Scope, rec: &Record, plan: &mut Plan<T>) -> Vec<Usage> {
    let l = &rec.value["Listener"];
    let lb_arn = str_of(l, "LoadBalancerArn").to_string();
    let id = crate::lb::id_of(str_of(l, "ListenerArn"));
    let mut released = vec![Usage {
        user: str_of(l, "ListenerArn").to_string(),
        lb_arn: lb_arn.clone(),
        old: forward_tgs(&l["DefaultActions"]),
        new: vec![],
    }];
    for r in s.list(RULE, &format!("{id}/")) {
        released.push(Usage {
            user: str_of(&r.value["Rule"], "RuleArn").to_string(),
            lb_arn: lb_arn.clone(),
            old: forward_tgs(&r.value["Rule"]["Actions"]),
            new: vec![],
        });
        plan.delete(&r);
    }
    release_published_ports(s, l, plan);
    plan.delete(rec);
    released
}

pub fn delete(
    s: &Scope,
    input: elbv2::DeleteListenerInput,
) -> ApiResult<elbv2::DeleteListenerOutput> {
    let arn = input.listener_arn.as_str();
    commit(s.store, || {
        let rec = get(s, arn)?;
        let mut plan = Plan::new(elbv2::DeleteListenerOutput {});
        let released = plan_delete(s, &rec, &mut plan);
        tg::release(s, &released, &mut plan)?;
        Ok(plan)
    })
}
