//! What the data plane serves, read from the ELBv2 API's records: load balancers with
//! their addresses and listeners, each listener's rules in evaluation order, and target
//! groups with their targets. Rebuilt whole on every change (a few records per load
//! balancer), so the proxy only ever sees a consistent snapshot.

use crate::rules::{Action, Condition};
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

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub protocol: String,
    /// None: the traffic port.
    pub port: Option<u16>,
    pub path: String,
    pub interval_secs: u64,
    pub timeout_secs: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// HTTP codes that pass, as inclusive ranges.
    pub codes: Vec<(u16, u16)>,
}

#[derive(Debug, Clone)]
pub struct Tg {
    pub arn: String,
    /// The targets record's key, for health and drain updates.
    pub targets_key: String,
    pub protocol: String,
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

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn attr<'v>(rec: &'v Value, k: &str) -> Option<&'v str> {
    rec["Attributes"].get(k).and_then(Value::as_str)
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

fn tg_protocol(tg: &Value) -> String {
    match s(tg, "Protocol") {
        "UDP" => "udp".into(),
        _ => "tcp".into(),
    }
}

/// Where this host's `port` leads: a bridge-mode task's address and container port when a
/// task holds the port (so traffic goes straight to it, also from kernel forwarding, which
/// cannot reach the host's loopback), else the host's loopback.
fn host_port_target(store: &dyn Store, protocol: &str, port: u16) -> SocketAddrV4 {
    let direct = || -> Option<SocketAddrV4> {
        let lease = store.get(&berth_leases::ports::port_key(protocol, port))?;
        let key = berth_leases::owner_task_key(lease.value["owner"].as_str()?)?;
        let task = store.get(&key)?;
        let ip: Ipv4Addr = task.value["_berth"]["ip"].as_str()?.parse().ok()?;
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
    let mut targets: HashMap<String, (String, Value)> = HashMap::new();
    for r in store.list(&format!("{prefix}targets/")) {
        let id = r.key.rsplit('/').next().unwrap_or("").to_string();
        targets.insert(id, (r.key.clone(), (*r.value).clone()));
    }
    for r in store.list(&format!("{prefix}tg/")) {
        let tg = &r.value["TargetGroup"];
        let arn = s(tg, "TargetGroupArn").to_string();
        let gid = arn.rsplit('/').next().unwrap_or("").to_string();
        let (targets_key, tv) = targets
            .remove(&gid)
            .unwrap_or_else(|| (format!("{prefix}targets/{gid}"), Value::Null));
        let in_use = berth_elbv2::api::record_in_use(&r.value);
        let port = |v: &Value| v.as_i64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
        let list = tv["Targets"].as_array().cloned().unwrap_or_default();
        let targets: Vec<Target> = list
            .iter()
            .map(|t| {
                let id = s(t, "Id").to_string();
                let p = port(&t["Port"]);
                let addr = match id.parse::<Ipv4Addr>() {
                    Ok(ip) => Some(SocketAddrV4::new(ip, p)),
                    Err(_) if local.instance_id.as_deref() == Some(id.as_str()) => {
                        Some(host_port_target(store, &tg_protocol(tg), p))
                    }
                    Err(_) => None,
                };
                let drain_deadline = t["DrainingSince"]
                    .as_f64()
                    .map(|since| since + t["DrainSeconds"].as_f64().unwrap_or(300.0));
                Target {
                    addr,
                    id,
                    port: p,
                    state: s(t, "State").to_string(),
                    drain_deadline,
                }
            })
            .collect();
        let hc_port = match s(tg, "HealthCheckPort") {
            "traffic-port" | "" => None,
            p => p.parse().ok(),
        };
        let matcher = tg["Matcher"]["HttpCode"].as_str().unwrap_or("200");
        let sticky_secs = (attr(&r.value, "stickiness.enabled") == Some("true")
            && attr(&r.value, "stickiness.type").unwrap_or("lb_cookie") == "lb_cookie")
            .then(|| {
                attr(&r.value, "stickiness.lb_cookie.duration_seconds")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(86400)
            });
        let algorithm = match attr(&r.value, "load_balancing.algorithm.type") {
            Some("least_outstanding_requests") => Algorithm::LeastOutstanding,
            _ => Algorithm::RoundRobin,
        };
        w.tgs.insert(
            arn.clone(),
            Tg {
                arn,
                targets_key,
                protocol: s(tg, "Protocol").to_string(),
                in_use,
                algorithm,
                sticky_secs,
                health: HealthCheck {
                    protocol: s(tg, "HealthCheckProtocol").to_string(),
                    port: hc_port,
                    path: tg["HealthCheckPath"].as_str().unwrap_or("/").to_string(),
                    interval_secs: tg["HealthCheckIntervalSeconds"].as_u64().unwrap_or(30),
                    timeout_secs: tg["HealthCheckTimeoutSeconds"].as_u64().unwrap_or(5),
                    healthy_threshold: tg["HealthyThresholdCount"].as_u64().unwrap_or(5) as u32,
                    unhealthy_threshold: tg["UnhealthyThresholdCount"].as_u64().unwrap_or(2) as u32,
                    codes: parse_codes(matcher),
                },
                targets,
            },
        );
    }
    // Listeners and rules by the ids in their keys.
    let mut rules: HashMap<String, Vec<Value>> = HashMap::new();
    for r in store.list(&format!("{prefix}rule/")) {
        let listener_id = r.key[prefix.len() + 5..]
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        rules
            .entry(listener_id)
            .or_default()
            .push(r.value["Rule"].clone());
    }
    let mut listeners: HashMap<String, Vec<Listener>> = HashMap::new();
    for r in store.list(&format!("{prefix}listener/")) {
        let l = &r.value["Listener"];
        let arn = s(l, "ListenerArn").to_string();
        let lid = arn.rsplit('/').next().unwrap_or("").to_string();
        let mut rs = rules.remove(&lid).unwrap_or_default();
        // Numeric priorities first, in order; "default" last.
        rs.sort_by_key(|r| s(r, "Priority").parse::<u32>().unwrap_or(u32::MAX));
        let mut out = vec![];
        for rule in &rs {
            let conditions = rule["Conditions"]
                .as_array()
                .map(|c| c.iter().filter_map(Condition::from_model).collect())
                .unwrap_or_default();
            if let Some(action) = Action::from_model(&rule["Actions"]) {
                out.push(Rule { conditions, action });
            }
        }
        // A listener whose default rule record is missing still has its default actions.
        if rs.iter().all(|r| s(r, "Priority") != "default") {
            if let Some(action) = Action::from_model(&l["DefaultActions"]) {
                out.push(Rule {
                    conditions: vec![],
                    action,
                });
            }
        }
        let lb_arn = s(l, "LoadBalancerArn").to_string();
        listeners.entry(lb_arn).or_default().push(Listener {
            arn,
            port: l["Port"].as_u64().unwrap_or(0) as u16,
            protocol: s(l, "Protocol").to_string(),
            rules: out,
        });
    }
    for r in store.list(&format!("{prefix}lb/")) {
        let lb = &r.value["LoadBalancer"];
        let arn = s(lb, "LoadBalancerArn").to_string();
        let ips = berth_elbv2::api::addresses(lb);
        let mut parts = prefix.trim_matches('/').split('/');
        let (account, region) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let vpc_cidr = berth_elbv2::api::vpc_cidr(store, account, region, s(lb, "VpcId"))
            .and_then(|c| berth_net::Cidr::parse(&c));
        w.lbs.push(Lb {
            dns_name: s(lb, "DNSName").to_ascii_lowercase(),
            lb_type: if s(lb, "Type") == "network" {
                LbType::Network
            } else {
                LbType::Application
            },
            ips,
            vpc_cidr,
            idle_timeout_secs: attr(&r.value, "idle_timeout.timeout_seconds")
                .and_then(|v| v.parse().ok())
                .unwrap_or(60),
            listeners: listeners.remove(&arn).unwrap_or_default(),
            arn,
        });
    }
}
