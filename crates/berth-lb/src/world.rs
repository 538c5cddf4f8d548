//! What the data plane serves, read from the ELBv2 API's records: load balancers with
//! their addresses and listeners, each listener's rules in evaluation order, and target
//! groups with their targets. Rebuilt whole on every change (a few records per load
//! balancer), so the proxy only ever sees a consistent snapshot.

use crate::rules::{Action, Condition};
use berth_model::elbv2::{self as model, arn, key, key::Kind};
use berth_store::Store;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbType {
    Application,
    Network,
}

#[derive(Debug, Clone)]
pub struct Lb {
    pub arn: String,
    pub dns_name: String,
    pub lb_type: LbType,
    pub ips: Vec<Ipv4Addr>,
    /// The VPC's range: connections from it to a network load balancer are NATed so the
    /// target's reply comes back through the host (see nlb.rs).
    pub vpc_cidr: Option<berth_net::Cidr>,
    pub idle_timeout_secs: u64,
    /// Scheme `internal`: reachable only on its own addresses, never on `--publish-lb`'s.
    pub internal: bool,
    pub listeners: Vec<Listener>,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub arn: String,
    pub port: u16,
    pub protocol: String,
    /// In evaluation order: by priority, the default rule last.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub conditions: Vec<Condition>,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstanding,
}

/// How requests reach a group's targets (its ProtocolVersion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolVersion {
    #[default]
    Http1,
    Http2,
    Grpc,
}

impl ProtocolVersion {
    fn of(v: Option<&str>) -> ProtocolVersion {
        match v {
            Some("HTTP2") => ProtocolVersion::Http2,
            Some("GRPC") => ProtocolVersion::Grpc,
            _ => ProtocolVersion::Http1,
        }
    }

    /// Requests and health checks go as HTTP/2.
    pub fn h2(self) -> bool {
        self != ProtocolVersion::Http1
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub protocol: String,
    /// The group's protocol version: HTTP2 checks go as HTTP/2 and GRPC ones as gRPC
    /// calls (their codes are grpc-status values).
    pub version: ProtocolVersion,
    /// None: the traffic port.
    pub port: Option<u16>,
    pub path: String,
    pub interval_secs: u64,
    pub timeout_secs: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// HTTP codes (gRPC status codes for GRPC groups) that pass, as inclusive ranges.
    pub codes: Vec<(u16, u16)>,
}

#[derive(Debug, Clone)]
pub struct Tg {
    pub arn: String,
    /// The targets record's key, for health and drain updates.
    pub targets_key: String,
    pub protocol: String,
    /// ProtocolVersion: HTTP/1.1, HTTP/2 or gRPC to the targets.
    pub version: ProtocolVersion,
    pub in_use: bool,
    pub algorithm: Algorithm,
    /// lb_cookie stickiness: how long a client keeps its target, if it does.
    pub sticky_secs: Option<u64>,
    pub health: HealthCheck,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub port: u16,
    pub state: String,
    /// Where its traffic goes; None for a target this host cannot reach (another host's
    /// instance).
    pub addr: Option<SocketAddrV4>,
    /// For a draining target: when the deregistration delay ends (seconds since the epoch).
    pub drain_deadline: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct World {
    pub lbs: Vec<Lb>,
    pub tgs: HashMap<String, Tg>,
}

/// How instance targets are reached: this host's instance id (if it registered) maps to
/// the host itself.
#[derive(Debug, Clone, Default)]
pub struct Local {
    pub instance_id: Option<String>,
}

/// HTTP codes like "200", "200,202" or "200-299".
pub fn parse_codes(m: &str) -> Vec<(u16, u16)> {
    m.split(',')
        .filter_map(|p| match p.trim().split_once('-') {
            Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
            None => {
                let c = p.trim().parse().ok()?;
                Some((c, c))
            }
        })
        .collect()
}

fn tg_protocol(tg: &model::TargetGroup) -> String {
    match tg.protocol.as_deref() {
        Some("UDP") => "udp".into(),
        _ => "tcp".into(),
    }
}

/// A stored record as its type; one that does not parse is logged and left out whole.
fn typed<T: serde::de::DeserializeOwned>(key: &str, v: &Value) -> Option<T> {
    match model::from_value(v) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(%key, error = %e, "unreadable ELBv2 record left out");
            None
        }
    }
}

/// Where this host's `port` leads: a bridge-mode task's address and container port when a
/// task holds the port (so traffic goes straight to it, also from kernel forwarding, which
/// cannot reach the host's loopback), else the host's loopback.
fn host_port_target(store: &dyn Store, protocol: &str, port: u16) -> SocketAddrV4 {
    let direct = || -> Option<SocketAddrV4> {
        let lease = store.get(&berth_leases::ports::port_key(protocol, port))?;
        let task = berth_model::ecs::TaskId::parse_arn(lease.value["owner"].as_str()?)?;
        let task = store.get(&task.key())?;
        let ip: Ipv4Addr = berth_model::ecs::TaskPrivate::of(&task.value)
            .ip?
            .parse()
            .ok()?;
        let container_port = task.value["containers"]
            .as_array()?
            .iter()
            .flat_map(|c| c["networkBindings"].as_array().cloned().unwrap_or_default())
            .find(|b| b["hostPort"] == i64::from(port))?["containerPort"]
            .as_u64()?;
        Some(SocketAddrV4::new(ip, u16::try_from(container_port).ok()?))
    };
    direct().unwrap_or(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Every account's and region's ELBv2 records, under the prefixes `/{a}/{r}/elbv2/`.
pub fn load(store: &dyn Store, prefixes: &BTreeSet<String>, local: &Local) -> World {
    let mut w = World::default();
    for p in prefixes {
        load_scope(store, p, local, &mut w);
    }
    w
}

fn load_scope(store: &dyn Store, prefix: &str, local: &Local, w: &mut World) {
    // Targets by group id (the record key's last part).
    let mut targets: HashMap<String, (String, Vec<model::Target>)> = HashMap::new();
    for r in store.list(&key::kind_prefix(prefix, Kind::Targets)) {
        let Some(k) = key::parse(&r.key) else {
            continue;
        };
        let Some(t) = typed::<model::TargetsRecord>(&r.key, &r.value) else {
            continue;
        };
        targets.insert(k.own_id().to_string(), (r.key.clone(), t.targets));
    }
    for r in store.list(&key::kind_prefix(prefix, Kind::Tg)) {
        let Some(rec) = typed::<model::TgRecord>(&r.key, &r.value) else {
            continue;
        };
        let tg = &rec.target_group;
        let arn = tg.arn.clone();
        let gid = arn::id_of(&arn).to_string();
        let (targets_key, list) = targets.remove(&gid).unwrap_or_else(|| {
            (
                format!("{}{gid}", key::kind_prefix(prefix, Kind::Targets)),
                vec![],
            )
        });
        let port = |p: i64| u16::try_from(p).unwrap_or(0);
        let targets: Vec<Target> = list
            .iter()
            .map(|t| {
                let p = port(t.port);
                let addr = match t.id.parse::<Ipv4Addr>() {
                    Ok(ip) => Some(SocketAddrV4::new(ip, p)),
                    Err(_) if local.instance_id.as_deref() == Some(t.id.as_str()) => {
                        Some(host_port_target(store, &tg_protocol(tg), p))
                    }
                    Err(_) => None,
                };
                Target {
                    addr,
                    id: t.id.clone(),
                    port: p,
                    state: t.state.as_str().to_string(),
                    drain_deadline: t.drain_deadline(),
                }
            })
            .collect();
        let hc_port = match tg.health_check_port.as_deref() {
            Some("traffic-port") | Some("") | None => None,
            Some(p) => p.parse().ok(),
        };
        let version = ProtocolVersion::of(tg.extra.get("ProtocolVersion").and_then(Value::as_str));
        let matcher = match version {
            ProtocolVersion::Grpc => tg
                .matcher
                .as_ref()
                .and_then(|m| m.grpc_code.as_deref())
                .unwrap_or("12"),
            _ => tg
                .matcher
                .as_ref()
                .and_then(|m| m.http_code.as_deref())
                .unwrap_or("200"),
        };
        let default_path = match version {
            ProtocolVersion::Grpc => "/AWS.ALB/healthcheck",
            _ => "/",
        };
        let sticky_secs = (rec.attr("stickiness.enabled") == Some("true")
            && rec.attr("stickiness.type").unwrap_or("lb_cookie") == "lb_cookie")
            .then(|| {
                rec.attr("stickiness.lb_cookie.duration_seconds")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(86400)
            });
        let algorithm = match rec.attr("load_balancing.algorithm.type") {
            Some("least_outstanding_requests") => Algorithm::LeastOutstanding,
            _ => Algorithm::RoundRobin,
        };
        w.tgs.insert(
            arn.clone(),
            Tg {
                arn,
                targets_key,
                protocol: tg.protocol.clone().unwrap_or_default(),
                version,
                in_use: rec.in_use(),
                algorithm,
                sticky_secs,
                health: HealthCheck {
                    protocol: tg.health_check_protocol.clone().unwrap_or_default(),
                    version,
                    port: hc_port,
                    path: tg
                        .health_check_path
                        .clone()
                        .unwrap_or_else(|| default_path.into()),
                    interval_secs: tg.health_check_interval_seconds.unwrap_or(30),
                    timeout_secs: tg.health_check_timeout_seconds.unwrap_or(5),
                    healthy_threshold: tg.healthy_threshold_count.unwrap_or(5),
                    unhealthy_threshold: tg.unhealthy_threshold_count.unwrap_or(2),
                    codes: parse_codes(matcher),
                },
                targets,
            },
        );
    }
    // Listeners and rules by the ids in their keys.
    let mut rules: HashMap<String, Vec<model::Rule>> = HashMap::new();
    let mut broken: std::collections::HashSet<String> = Default::default();
    for r in store.list(&key::kind_prefix(prefix, Kind::Rule)) {
        let Some(k) = key::parse(&r.key) else {
            continue;
        };
        let listener_id = k.parent_id().to_string();
        match typed::<model::RuleRecord>(&r.key, &r.value) {
            Some(rec) => rules.entry(listener_id).or_default().push(rec.rule),
            // Its priority is unknown: the rules after it cannot be placed either.
            None => {
                broken.insert(listener_id);
            }
        }
    }
    let mut listeners: HashMap<String, Vec<Listener>> = HashMap::new();
    for r in store.list(&key::kind_prefix(prefix, Kind::Listener)) {
        let Some(rec) = typed::<model::ListenerRecord>(&r.key, &r.value) else {
            continue;
        };
        let l = rec.listener;
        let lid = arn::id_of(&l.arn).to_string();
        if broken.contains(&lid) {
            tracing::warn!(listener = %l.arn, "listener left out: one of its rules is unreadable");
            continue;
        }
        let mut rs = rules.remove(&lid).unwrap_or_default();
        // Numeric priorities first, in order; "default" last.
        rs.sort_by_key(model::Rule::order_key);
        let mut out = vec![];
        for rule in &rs {
            match compile(&rule.conditions, &rule.actions) {
                Ok(rule) => out.push(rule),
                Err(e) => tracing::warn!(rule = %rule.arn, error = %e, "rule left out"),
            }
        }
        // A listener whose default rule record is missing still has its default actions.
        if rs.iter().all(|r| r.priority != "default") {
            match compile(&[], &l.default_actions) {
                Ok(rule) => out.push(rule),
                Err(e) => tracing::warn!(listener = %l.arn, error = %e, "default rule left out"),
            }
        }
        listeners
            .entry(l.load_balancer_arn.clone())
            .or_default()
            .push(Listener {
                port: u16::try_from(l.port).unwrap_or(0),
                protocol: l.protocol,
                rules: out,
                arn: l.arn,
            });
    }
    for r in store.list(&key::kind_prefix(prefix, Kind::Lb)) {
        let Some(rec) = typed::<model::LbRecord>(&r.key, &r.value) else {
            continue;
        };
        let lb = &rec.load_balancer;
        let Some(k) = key::parse(&r.key) else {
            continue;
        };
        let vpc_cidr = berth_elbv2::api::vpc_cidr(
            store,
            k.account,
            k.region,
            lb.vpc_id.as_deref().unwrap_or(""),
        )
        .and_then(|c| berth_net::Cidr::parse(&c));
        w.lbs.push(Lb {
            dns_name: lb.dns_name.to_ascii_lowercase(),
            lb_type: match lb.lb_type {
                model::LbType::Network => LbType::Network,
                model::LbType::Application | model::LbType::Gateway => LbType::Application,
            },
            ips: lb.addresses(),
            vpc_cidr,
            idle_timeout_secs: rec
                .attr("idle_timeout.timeout_seconds")
                .and_then(|v| v.parse().ok())
                .unwrap_or(60),
            internal: lb.scheme.as_deref() == Some("internal"),
            listeners: listeners.remove(&lb.arn).unwrap_or_default(),
            arn: lb.arn.clone(),
        });
    }
}

/// A rule's conditions and actions, compiled; any condition or action the data plane
/// cannot serve leaves the whole rule out (dropping a condition would widen it).
fn compile(conditions: &[model::Condition], actions: &[model::Action]) -> Result<Rule, String> {
    Ok(Rule {
        conditions: conditions
            .iter()
            .map(Condition::from_model)
            .collect::<Result<_, _>>()?,
        action: Action::from_model(actions)?,
    })
}
