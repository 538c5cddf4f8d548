//! The network load balancer forwards in the kernel: for each listener address, DNAT
//! rules spread new connections evenly over the healthy targets (every routable one when
//! none is healthy), and the client's address reaches the target unchanged. Connections
//! from inside the load balancer's VPC (tasks, and the host through the load balancer's
//! own address) are also source-NATed: their target would otherwise answer the client
//! straight over the bridge, past the host's connection tracking. Every load balancer
//! address also ends its traversal of BERTH-LB with ACCEPT, so a task's host-port mapping
//! in BERTH-DNAT never captures traffic meant for a load balancer.

use crate::rules::Action;
use crate::world::{LbType, World};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Rules as iptables arguments: (for BERTH-LB, for BERTH-LB-SNAT).
pub type Rules = (Vec<Vec<String>>, Vec<Vec<String>>);

pub fn rules(world: &World, publish: Option<Ipv4Addr>) -> Rules {
    let (mut lb, mut snat) = (vec![], vec![]);
    let mut shielded = vec![];
    for l in &world.lbs {
        if l.lb_type == LbType::Network {
            for listener in &l.listeners {
                let Some(Action::Forward { groups, .. }) = listener.rules.last().map(|r| &r.action)
                else {
                    continue;
                };
                let Some(tg) = groups.first().and_then(|(arn, _)| world.tgs.get(arn)) else {
                    continue;
                };
                let routable: Vec<(SocketAddrV4, bool)> = tg
                    .targets
                    .iter()
                    .filter(|t| t.state != "draining")
                    // The host's own loopback cannot be a DNAT destination from outside it.
                    .filter_map(|t| {
                        t.addr
                            .filter(|a| !a.ip().is_loopback())
                            .map(|a| (a, t.state == "healthy"))
                    })
                    .collect();
                let any_healthy = routable.iter().any(|(_, h)| *h);
                let targets: Vec<SocketAddrV4> = routable
                    .into_iter()
                    .filter(|(_, h)| *h || !any_healthy)
                    .map(|(a, _)| a)
                    .collect();
                let protocols: &[&str] = match listener.protocol.as_str() {
                    "UDP" => &["udp"],
                    "TCP_UDP" => &["tcp", "udp"],
                    _ => &["tcp"],
                };
                let mut addrs: Vec<Ipv4Addr> = l.ips.clone();
                addrs.extend(publish.filter(|_| !l.internal));
                for ip in &addrs {
                    for proto in protocols {
                        let n = targets.len();
                        for (i, t) in targets.iter().enumerate() {
                            let mut r = vec![
                                "-d".into(),
                                format!("{ip}/32"),
                                "-p".into(),
                                proto.to_string(),
                                "--dport".into(),
                                listener.port.to_string(),
                            ];
                            // Rule i takes 1/(n-i) of what the rules before it left.
                            if i + 1 < n {
                                r.extend([
                                    "-m".into(),
                                    "statistic".into(),
                                    "--mode".into(),
                                    "random".into(),
                                    "--probability".into(),
                                    format!("{:.8}", 1.0 / (n - i) as f64),
                                ]);
                            }
                            r.extend([
                                "-j".into(),
                                "DNAT".into(),
                                "--to-destination".into(),
                                t.to_string(),
                            ]);
                            lb.push(r);
                        }
                    }
                }
                if let Some(cidr) = l.vpc_cidr {
                    for ip in &l.ips {
                        snat.push(vec![
                            "-s".into(),
                            cidr.to_string(),
                            "-m".into(),
                            "conntrack".into(),
                            "--ctstate".into(),
                            "DNAT".into(),
                            "--ctorigdst".into(),
                            ip.to_string(),
                            "-j".into(),
                            "MASQUERADE".into(),
                        ]);
                    }
                }
            }
        }
        shielded.extend(l.ips.iter().copied());
    }
    shielded.sort();
    shielded.dedup();
    for ip in shielded {
        lb.push(vec![
            "-d".into(),
            format!("{ip}/32"),
            "-j".into(),
            "ACCEPT".into(),
        ]);
    }
    (lb, snat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::*;

    fn target(ip: &str, state: &str) -> Target {
        Target {
            id: ip.into(),
            port: 80,
            state: state.into(),
            addr: Some(SocketAddrV4::new(ip.parse().unwrap(), 80)),
            drain_deadline: None,
        }
    }

    #[test]
    fn spreads_connections_over_healthy_targets() {
        let mut w = World::default();
        w.tgs.insert(
            "tg".into(),
            Tg {
                arn: "tg".into(),
                targets_key: String::new(),
                protocol: "TCP".into(),
                version: ProtocolVersion::Http1,
                in_use: true,
                algorithm: Algorithm::RoundRobin,
                sticky_secs: None,
                health: HealthCheck {
                    version: ProtocolVersion::Http1,
                    protocol: "TCP".into(),
                    port: None,
                    path: "/".into(),
                    interval_secs: 5,
                    timeout_secs: 5,
                    healthy_threshold: 2,
                    unhealthy_threshold: 2,
                    codes: vec![],
                },
                targets: vec![
                    target("10.0.0.5", "healthy"),
                    target("10.0.0.6", "unhealthy"),
                    target("10.0.0.7", "healthy"),
                    target("10.0.0.8", "draining"),
                ],
            },
        );
        w.lbs.push(Lb {
            arn: "lb".into(),
            dns_name: "x".into(),
            lb_type: LbType::Network,
            ips: vec!["10.0.0.4".parse().unwrap()],
            vpc_cidr: berth_net::Cidr::parse("10.0.0.0/16"),
            idle_timeout_secs: 60,
            internal: false,
            listeners: vec![Listener {
                arn: "l".into(),
                port: 9000,
                protocol: "TCP".into(),
                rules: vec![Rule {
                    conditions: vec![],
                    action: Action::Forward {
                        groups: vec![("tg".into(), 1)],
                        sticky_secs: None,
                    },
                }],
            }],
        });
        let (lb, snat) = rules(&w, None);
        let text: Vec<String> = lb.iter().map(|r| r.join(" ")).collect();
        assert_eq!(
            text,
            [
                "-d 10.0.0.4/32 -p tcp --dport 9000 -m statistic --mode random --probability 0.50000000 -j DNAT --to-destination 10.0.0.5:80",
                "-d 10.0.0.4/32 -p tcp --dport 9000 -j DNAT --to-destination 10.0.0.7:80",
                "-d 10.0.0.4/32 -j ACCEPT",
            ]
        );
        assert_eq!(
            snat[0].join(" "),
            "-s 10.0.0.0/16 -m conntrack --ctstate DNAT --ctorigdst 10.0.0.4 -j MASQUERADE"
        );
        // --publish-lb: an internet-facing load balancer is reachable on the host address
        // too; an internal one is not.
        let published = |w: &World| {
            rules(w, Some("127.0.0.1".parse().unwrap()))
                .0
                .iter()
                .any(|r| r.join(" ").starts_with("-d 127.0.0.1/32"))
        };
        assert!(published(&w));
        w.lbs[0].internal = true;
        assert!(!published(&w));
    }
}
