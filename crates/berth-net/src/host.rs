//! Berth's changes to the host's network, all under Berth's names: the bridge `berth0`
//! (one gateway address per subnet in use, and the task endpoints' address), veth links
//! named `berth` + the task id's start, the iptables chains BERTH-FORWARD (filter),
//! BERTH-POSTROUTING and BERTH-DNAT (nat), each reached by jump rules from the built-in
//! chains, and route_localnet on the bridge (so 127.0.0.1:PORT reaches a bridge-mode
//! task through the kernel). `tear_down` removes every one of them.

use crate::cidr::Cidr;
use std::collections::HashSet;
use std::io;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;

use crate::netlink::{self, Netlink};

pub const BRIDGE: &str = "berth0";
/// Prefix of every link Berth makes (the bridge and the host side of each task's veth).
pub const LINK_PREFIX: &str = "berth";
const FORWARD_CHAIN: &str = "BERTH-FORWARD";
const NAT_CHAIN: &str = "BERTH-POSTROUTING";
const DNAT_CHAIN: &str = "BERTH-DNAT";
/// Network load balancers' forwarding (nat PREROUTING and OUTPUT, ahead of BERTH-DNAT) and
/// the source NAT of connections from the bridge to them (nat POSTROUTING).
const LB_CHAIN: &str = "BERTH-LB";
const LB_SNAT_CHAIN: &str = "BERTH-LB-SNAT";

/// The host side of a task's veth pair: `berth` and the first ten characters of its id
/// (the kernel allows fifteen).
pub fn host_link(task_id: &str) -> String {
    let id: String = task_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect();
    format!("{LINK_PREFIX}{id}")
}

fn iptables(args: &[&str]) -> io::Result<bool> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run iptables: {e}")))?;
    Ok(out.status.success())
}

/// Run an iptables command that must succeed.
fn must(args: &[&str]) -> io::Result<()> {
    if iptables(args)? {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "iptables {} failed",
            args.join(" ")
        )))
    }
}

/// Append a rule unless it is there already.
fn ensure_rule(table: &str, chain: &str, rule: &[&str]) -> io::Result<()> {
    let mut check = vec!["-t", table, "-C", chain];
    check.extend_from_slice(rule);
    if iptables(&check)? {
        return Ok(());
    }
    let mut add = vec!["-t", table, "-A", chain];
    add.extend_from_slice(rule);
    must(&add)
}

/// Make a chain of Berth's and jump to it first from `from`.
fn ensure_chain(table: &str, chain: &str, from: &str) -> io::Result<()> {
    let _ = iptables(&["-t", table, "-N", chain]);
    if !iptables(&["-t", table, "-C", from, "-j", chain])? {
        must(&["-t", table, "-I", from, "1", "-j", chain])?;
    }
    Ok(())
}

/// Make a nat chain and jump to it first from PREROUTING and OUTPUT for traffic to the
/// host's own addresses.
fn ensure_local_nat_chain(chain: &str) -> io::Result<()> {
    let _ = iptables(&["-t", "nat", "-N", chain]);
    for from in ["PREROUTING", "OUTPUT"] {
        let jump = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", chain];
        let mut check = vec!["-t", "nat", "-C", from];
        check.extend_from_slice(&jump);
        if !iptables(&check)? {
            let mut add = vec!["-t", "nat", "-I", from, "1"];
            add.extend_from_slice(&jump);
            must(&add)?;
        }
    }
    Ok(())
}

/// The host's network, prepared once per `berth up`.
pub struct HostNetwork {
    /// Subnets whose gateway address and NAT rule are in place, so a task start costs no
    /// iptables run once its subnet has been seen.
    ready: Mutex<HashSet<Cidr>>,
}

impl HostNetwork {
    /// Create the bridge and Berth's chains, and turn on IPv4 forwarding. Returns what it
    /// did to the host, to be logged.
    pub fn set_up() -> io::Result<(HostNetwork, Vec<String>)> {
        let mut said = vec![];
        let mut nl = Netlink::open()?;
        if !netlink::link_exists(BRIDGE) {
            said.push(format!("created the bridge {BRIDGE}"));
        }
        nl.create_bridge(BRIDGE)?;
        let fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
        if fwd.trim() != "1" {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
            said.push("set net.ipv4.ip_forward=1".into());
        }
        ensure_chain("filter", FORWARD_CHAIN, "FORWARD")?;
        // Docker sets FORWARD's policy to DROP; Berth's jump comes first and accepts its own.
        ensure_rule("filter", FORWARD_CHAIN, &["-i", BRIDGE, "-j", "ACCEPT"])?;
        ensure_rule(
            "filter",
            FORWARD_CHAIN,
            &[
                "-o",
                BRIDGE,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
        )?;
        // Port mappings: connections the kernel rewrote to a task are let through.
        ensure_rule(
            "filter",
            FORWARD_CHAIN,
            &[
                "-o",
                BRIDGE,
                "-m",
                "conntrack",
                "--ctstate",
                "DNAT",
                "-j",
                "ACCEPT",
            ],
        )?;
        ensure_chain("nat", NAT_CHAIN, "POSTROUTING")?;
        // Connections to 127.0.0.1:PORT leave through the bridge with the gateway's address.
        ensure_rule(
            "nat",
            NAT_CHAIN,
            &["-s", "127.0.0.0/8", "-o", BRIDGE, "-j", "MASQUERADE"],
        )?;
        ensure_local_nat_chain(DNAT_CHAIN)?;
        // Load balancers' chain is jumped to before the port mappings (inserted after, so
        // first), so a load balancer's address is never taken by a task's host port.
        ensure_local_nat_chain(LB_CHAIN)?;
        ensure_chain("nat", LB_SNAT_CHAIN, "POSTROUTING")?;
        let localnet = format!("/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet");
        if std::fs::read_to_string(&localnet)
            .unwrap_or_default()
            .trim()
            != "1"
        {
            std::fs::write(&localnet, "1")?;
            said.push(format!("set net.ipv4.conf.{BRIDGE}.route_localnet=1"));
        }
        said.push(format!(
            "iptables chains {FORWARD_CHAIN} (filter), {NAT_CHAIN}, {DNAT_CHAIN}, {LB_CHAIN} and {LB_SNAT_CHAIN} (nat) in place"
        ));
        Ok((
            HostNetwork {
                ready: Mutex::new(HashSet::new()),
            },
            said,
        ))
    }

    /// Make a subnet usable on the bridge: its gateway address (so the host reaches its
    /// tasks) and outbound NAT. A range that clashes with one of the host's own routes is
    /// refused rather than taken over.
    pub fn ensure_subnet(&self, cidr: Cidr) -> io::Result<()> {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        if ready.contains(&cidr) {
            return Ok(());
        }
        if let Some((route, dev)) = host_routes()
            .into_iter()
            .find(|(r, dev)| r.len > 0 && dev != BRIDGE && r.overlaps(&cidr))
        {
            return Err(io::Error::other(format!(
                "the subnet range {cidr} overlaps the host's route {route} on {dev}"
            )));
        }
        Netlink::open()?.add_address(BRIDGE, cidr.gateway(), cidr.len)?;
        let src = cidr.to_string();
        ensure_rule(
            "nat",
            NAT_CHAIN,
            &["-s", &src, "!", "-o", BRIDGE, "-j", "MASQUERADE"],
        )?;
        ready.insert(cidr);
        Ok(())
    }

    /// Forward `host_port` on every host address (127.0.0.1 included) to `ip:port` in the
    /// kernel. Each rule carries the task's id so `unmap_ports` finds them all.
    pub fn map_port(
        &self,
        task_id: &str,
        protocol: &str,
        host_port: u16,
        ip: Ipv4Addr,
        port: u16,
    ) -> io::Result<()> {
        let (hp, to, tag) = (
            host_port.to_string(),
            format!("{ip}:{port}"),
            rule_tag(task_id),
        );
        ensure_rule(
            "nat",
            DNAT_CHAIN,
            &[
                "-p",
                protocol,
                "--dport",
                &hp,
                "-m",
                "comment",
                "--comment",
                &tag,
                "-j",
                "DNAT",
                "--to-destination",
                &to,
            ],
        )
    }

    /// Replace the load balancers' rules in one atomic iptables-restore: `lb` goes into
    /// BERTH-LB (nat PREROUTING/OUTPUT), `snat` into BERTH-LB-SNAT (nat POSTROUTING). Each
    /// rule is written as iptables arguments after `-A CHAIN`.
    pub fn set_lb_rules(&self, lb: &[Vec<String>], snat: &[Vec<String>]) -> io::Result<()> {
        let quote = |a: &String| {
            if a.is_empty() || a.contains([' ', '"', '\\']) {
                format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                a.clone()
            }
        };
        let mut text = format!("*nat\n:{LB_CHAIN} - [0:0]\n:{LB_SNAT_CHAIN} - [0:0]\n");
        for (chain, rules) in [(LB_CHAIN, lb), (LB_SNAT_CHAIN, snat)] {
            for r in rules {
                let args: Vec<String> = r.iter().map(quote).collect();
                text.push_str(&format!("-A {chain} {}\n", args.join(" ")));
            }
        }
        text.push_str("COMMIT\n");
        restore(&text)
    }

    /// Remove an address `add_bridge_address` added.
    pub fn remove_bridge_address(&self, ip: Ipv4Addr) -> io::Result<()> {
        Netlink::open()?.delete_address(BRIDGE, ip, 32)
    }

    /// Add an address of Berth's own to the bridge, as /32: the task endpoints'
    /// 169.254.170.2, a load balancer's.
    pub fn add_bridge_address(&self, ip: Ipv4Addr) -> io::Result<()> {
        Netlink::open()?.add_address(BRIDGE, ip, 32)
    }
}

/// `iptables-restore --noflush`: chains named in the text are flushed and refilled in
/// one commit, every other chain stays as it is.
fn restore(text: &str) -> io::Result<()> {
    use std::io::Write;
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run iptables-restore: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "iptables-restore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn rule_tag(task_id: &str) -> String {
    format!("berth-task-{task_id}")
}

/// The port-mapping rules as `iptables -S` prints them.
fn dnat_rules() -> io::Result<Vec<String>> {
    let out = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S", DNAT_CHAIN])
        .stdin(std::process::Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "iptables -S {DNAT_CHAIN}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect())
}

/// The ids of the tasks that have port mappings.
pub fn mapped_tasks() -> io::Result<Vec<String>> {
    let prefix = rule_tag("");
    let mut ids: Vec<String> = dnat_rules()?
        .iter()
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|w| w.strip_prefix(&prefix).map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Remove a task's port mappings, and check that none is left.
pub fn unmap_ports(task_id: &str) -> io::Result<()> {
    let tag = rule_tag(task_id);
    let theirs = |rules: Vec<String>| -> Vec<String> {
        rules
            .into_iter()
            .filter(|l| l.split_whitespace().any(|w| w == tag))
            .collect()
    };
    for _ in 0..3 {
        let left = theirs(dnat_rules()?);
        if left.is_empty() {
            return Ok(());
        }
        for line in left {
            // "-A BERTH-DNAT ..." becomes "-D BERTH-DNAT ...".
            let args: Vec<&str> = line.split_whitespace().skip(1).collect();
            let mut del = vec!["-t", "nat", "-D"];
            del.extend_from_slice(&args);
            let _ = iptables(&del)?;
        }
    }
    match theirs(dnat_rules()?).len() {
        0 => Ok(()),
        n => Err(io::Error::other(format!(
            "{n} port mapping rule(s) of task {task_id} would not go"
        ))),
    }
}

/// The host's IPv4 routes as (destination, device).
fn host_routes() -> Vec<(Cidr, String)> {
    parse_routes(&std::fs::read_to_string("/proc/net/route").unwrap_or_default())
}

/// /proc/net/route: a header line, then interface, destination, gateway, flags, refcnt,
/// use, metric, mask, ... with addresses as hex of their bytes in network order read as a
/// native-endian number.
fn parse_routes(text: &str) -> Vec<(Cidr, String)> {
    let addr = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = addr(f.get(1)?)?;
            let mask = addr(f.get(7)?)?;
            Some((
                Cidr {
                    addr: dest,
                    len: mask.count_ones() as u8,
                },
                f[0].to_string(),
            ))
        })
        .collect()
}

/// Remove every host change Berth made: its links (the bridge takes its addresses and
/// routes with it), its chains and the jumps to them. Returns what it removed.
pub fn tear_down() -> Vec<String> {
    let mut said = vec![];
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(LINK_PREFIX))
        .collect();
    if let Ok(mut nl) = Netlink::open() {
        // Task links first, the bridge last.
        let mut links = links;
        links.sort_by_key(|n| n == BRIDGE);
        for l in links {
            match nl.delete_link(&l) {
                Ok(()) => said.push(format!("deleted link {l}")),
                Err(e) => said.push(format!("cannot delete link {l}: {e}")),
            }
        }
    }
    // The jumps first (a chain cannot go while a rule jumps to it), then the chains.
    let local = ["-m", "addrtype", "--dst-type", "LOCAL"];
    for (table, chain, from) in [
        ("filter", FORWARD_CHAIN, "FORWARD"),
        ("nat", NAT_CHAIN, "POSTROUTING"),
        ("nat", DNAT_CHAIN, "PREROUTING"),
        ("nat", DNAT_CHAIN, "OUTPUT"),
        ("nat", LB_CHAIN, "PREROUTING"),
        ("nat", LB_CHAIN, "OUTPUT"),
        ("nat", LB_SNAT_CHAIN, "POSTROUTING"),
    ] {
        let plain = ["-t", table, "-D", from, "-j", chain];
        let dst_local = [
            &["-t", table, "-D", from][..],
            &local[..],
            &["-j", chain][..],
        ]
        .concat();
        while iptables(&plain).unwrap_or(false) || iptables(&dst_local).unwrap_or(false) {}
    }
    for (table, chain) in [
        ("filter", FORWARD_CHAIN),
        ("nat", NAT_CHAIN),
        ("nat", DNAT_CHAIN),
        ("nat", LB_CHAIN),
        ("nat", LB_SNAT_CHAIN),
    ] {
        let flushed = iptables(&["-t", table, "-F", chain]).unwrap_or(false);
        if iptables(&["-t", table, "-X", chain]).unwrap_or(false) || flushed {
            said.push(format!("removed iptables chain {chain} ({table})"));
        }
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_link_names_fit_the_kernel_limit() {
        let n = host_link("0123456789abcdef0123456789abcdef");
        assert_eq!(n, "berth0123456789");
        assert!(n.len() <= 15);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_the_kernels_route_table() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_routes(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0.to_string(), "0.0.0.0/0");
        assert_eq!(r[1].0.to_string(), "192.0.2.0/24");
        assert_eq!(r[1].1, "eth0");
        assert!(r[1].0.overlaps(&Cidr::parse("192.0.2.128/25").unwrap()));
    }
}
