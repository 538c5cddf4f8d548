//! A task's network and its leases, as its mode asks: an address (awsvpc, bridge), host
//! ports (bridge, host) and the port mappings on the host; recorded in the task as ECS
//! shows them, and given back when the task ends.

use crate::{parse_key, Node};
use berth_leases::ipam;
use berth_model::ecs::TaskPrivate;
use berth_net::{HostNetwork, TaskNetwork};
use serde_json::{json, Value};
use std::collections::HashMap;

impl Node {
    /// Give the task its network as its mode asks, before its containers exist:
    /// awsvpc an address in one of its subnets; bridge an address in Berth's bridge range
    /// and its port mappings; host its fixed ports; none nothing. Everything taken is
    /// recorded in the task, so `release_network` gives it back whatever happens next.
    pub(crate) fn attach_network(
        &self,
        key: &str,
        td: &Value,
    ) -> Result<Option<TaskNetwork>, String> {
        let task = self.store.get(key).ok_or("task record vanished")?.value;
        let mode = network_mode(&task, td);
        let r = match mode {
            "awsvpc" | "bridge" => self.attach_address(key, &task, td, mode).map(Some),
            "host" => self.claim_host_ports(key, &task, td).map(|()| None),
            _ => Ok(None),
        };
        if r.is_err() {
            self.release_network(key);
        }
        r
    }

    /// An address on the bridge for an awsvpc or bridge task, recorded as ECS shows it.
    fn attach_address(
        &self,
        key: &str,
        task: &Value,
        td: &Value,
        mode: &str,
    ) -> Result<TaskNetwork, String> {
        let host = self.cfg.network.as_ref().map_err(|e| {
            format!("ResourceInitializationError: this host cannot give tasks a network: {e}")
        })?;
        let k = parse_key(key).expect("task key");
        let arn = task["taskArn"].as_str().unwrap_or_default().to_string();
        let private = TaskPrivate::of(task);
        let held_ip = private.ip.clone();
        let subnets: Vec<(ipam::Candidate, String)> = if mode == "bridge" {
            vec![(
                ipam::Candidate {
                    subnet_id: "bridge".into(),
                    cidr: self.cfg.bridge_cidr,
                },
                String::new(),
            )]
        } else {
            private
                .subnets
                .into_iter()
                .filter_map(|s| {
                    Some((
                        ipam::Candidate {
                            subnet_id: s.subnet_id,
                            cidr: berth_net::Cidr::parse(&s.cidr_block)?,
                        },
                        s.availability_zone,
                    ))
                })
                .collect()
        };
        let held = held_ip
            .and_then(|ip| ip.parse().ok())
            .and_then(|ip| ipam::lease_of(self.store.as_ref(), ip, &arn));
        let lease = match held {
            Some(l) => l,
            None => {
                let candidates: Vec<ipam::Candidate> =
                    subnets.iter().map(|(c, _)| c.clone()).collect();
                // Spread tasks over their subnets (and so zones), as ECS does.
                let start = k.id.bytes().map(usize::from).sum::<usize>();
                let lease = ipam::allocate(self.store.as_ref(), &candidates, start, &arn)
                    .map_err(|e| format!("ResourceInitializationError: {e}"))?;
                // Recorded at once, so a failure from here on gives it back.
                let ip = lease.ip.to_string();
                self.update(key, |t| {
                    let mut p = TaskPrivate::of(t);
                    p.ip = Some(ip.clone());
                    p.store_in(t);
                    true
                })
                .map_err(|e| format!("cannot record the task's address: {e}"))?;
                lease
            }
        };
        host.ensure_subnet(lease.cidr).map_err(|e| {
            format!("ResourceInitializationError: cannot attach the task's network interface: {e}")
        })?;
        let bindings = if mode == "bridge" {
            self.map_ports(host, key, task, td, lease.ip)?
        } else {
            HashMap::new()
        };
        let zone = subnets
            .iter()
            .find(|(c, _)| c.subnet_id == lease.subnet_id && !c.subnet_id.is_empty())
            .map(|(_, z)| z.clone())
            .filter(|z| !z.is_empty());
        let ip = lease.ip.to_string();
        let details = json!([
            {"name": "subnetId", "value": lease.subnet_id},
            {"name": "networkInterfaceId", "value": format!("eni-{}", &k.id[..17.min(k.id.len())])},
            {"name": "macAddress", "value": berth_net::task::mac_string(berth_net::task::mac_for(lease.ip))},
            {"name": "privateDnsName", "value": private_dns_name(lease.ip, &k.region)},
            {"name": "privateIPv4Address", "value": ip},
        ]);
        let role = task["overrides"]["taskRoleArn"]
            .as_str()
            .or(td["taskRoleArn"].as_str())
            .map(str::to_string);
        self.update(key, |t| {
            let mut p = TaskPrivate::of(t);
            p.cidr = Some(lease.cidr.to_string());
            p.network_mode = Some(mode.to_string());
            // The ids in the task's endpoint paths: random, and only ever given to it.
            if p.endpoint_token.is_none() {
                p.endpoint_token = Some(uuid::Uuid::new_v4().simple().to_string());
            }
            if let (Some(r), None) = (&role, &p.credentials_id) {
                p.credentials_id = Some(uuid::Uuid::new_v4().to_string());
                p.task_role_arn = Some(r.clone());
            }
            p.store_in(t);
            if mode == "awsvpc" {
                if let Some(z) = &zone {
                    t["availabilityZone"] = json!(z);
                }
                let mut attachment_id = Value::Null;
                for a in t["attachments"].as_array_mut().into_iter().flatten() {
                    if a["type"] == "ElasticNetworkInterface" {
                        a["status"] = json!("ATTACHED");
                        a["details"] = details.clone();
                        attachment_id = a["id"].clone();
                    }
                }
                for c in t["containers"].as_array_mut().into_iter().flatten() {
                    c["networkInterfaces"] =
                        json!([{"attachmentId": attachment_id, "privateIpv4Address": ip}]);
                }
            }
            for c in t["containers"].as_array_mut().into_iter().flatten() {
                if let Some(b) = c["name"].as_str().and_then(|n| bindings.get(n)) {
                    c["networkBindings"] = json!(b);
                }
            }
            true
        })
        .map_err(|e| format!("cannot record the task's network interface: {e}"))?;
        Ok(TaskNetwork {
            bridge: berth_net::BRIDGE.to_string(),
            host_link: berth_net::host::host_link(&k.id),
            ip: lease.ip,
            prefix_len: lease.cidr.len,
            gateway: lease.cidr.gateway(),
        })
    }

    /// Bridge mode: a host port for each port mapping (the fixed one, or a free one from
    /// the ephemeral range), forwarded by the kernel to the task's address.
    fn map_ports(
        &self,
        host: &HostNetwork,
        key: &str,
        task: &Value,
        td: &Value,
        ip: std::net::Ipv4Addr,
    ) -> Result<HashMap<String, Vec<Value>>, String> {
        let k = parse_key(key).expect("task key");
        let arn = task["taskArn"].as_str().unwrap_or_default();
        let mappings = port_mappings(td);
        if mappings.is_empty() {
            return Ok(HashMap::new());
        }
        self.update(key, |t| {
            let mut p = TaskPrivate::of(t);
            p.ports_mapped = true;
            p.store_in(t);
            true
        })
        .map_err(|e| format!("cannot record the task's ports: {e}"))?;
        // A launch that a restart cut short keeps the ports it already had.
        let earlier = |m: &PortMapping| -> Option<u16> {
            task["containers"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == m.container.as_str())?["networkBindings"]
                .as_array()?
                .iter()
                .find(|b| {
                    b["containerPort"] == m.container_port && b["protocol"] == m.protocol.as_str()
                })?["hostPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
        };
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        for (i, m) in mappings.iter().enumerate() {
            let host_port = match m.host_port.or_else(|| earlier(m)) {
                Some(p) => {
                    berth_leases::ports::claim(self.store.as_ref(), &m.protocol, p, arn).map(|()| p)
                }
                None => {
                    let hint = k.id.bytes().map(usize::from).sum::<usize>() * 7 + i;
                    berth_leases::ports::dynamic(self.store.as_ref(), &m.protocol, hint, arn)
                }
            }?;
            host.map_port(&k.id, &m.protocol, host_port, ip, m.container_port)
                .map_err(|e| {
                    format!("ResourceInitializationError: cannot map port {host_port}: {e}")
                })?;
            out.entry(m.container.clone()).or_default().push(json!({
                "bindIP": "0.0.0.0",
                "containerPort": m.container_port,
                "hostPort": host_port,
                "protocol": m.protocol,
            }));
        }
        Ok(out)
    }

    /// Host mode: each port mapping's port is the host's own; hold it, and report it.
    fn claim_host_ports(&self, key: &str, task: &Value, td: &Value) -> Result<(), String> {
        let arn = task["taskArn"].as_str().unwrap_or_default();
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        for m in port_mappings(td) {
            let port = m.host_port.unwrap_or(m.container_port);
            berth_leases::ports::claim(self.store.as_ref(), &m.protocol, port, arn)?;
            out.entry(m.container.clone()).or_default().push(json!({
                "bindIP": "0.0.0.0",
                "containerPort": m.container_port,
                "hostPort": port,
                "protocol": m.protocol,
            }));
        }
        self.update(key, |t| {
            let mut p = TaskPrivate::of(t);
            p.network_mode = Some("host".into());
            p.store_in(t);
            for c in t["containers"].as_array_mut().into_iter().flatten() {
                if let Some(b) = c["name"].as_str().and_then(|n| out.get(n)) {
                    c["networkBindings"] = json!(b);
                }
            }
            true
        })
        .map(|_| ())
        .map_err(|e| format!("cannot record the task's ports: {e}"))
    }

    /// Give back the address, ports and port mappings a task holds.
    /// Give back what the task holds on the host, retrying until the store takes it: the
    /// task is reported STOPPED only after (its address and ports are free by then). Runs
    /// on a blocking thread.
    pub(crate) fn release_network(&self, key: &str) {
        let mut wait = std::time::Duration::from_millis(50);
        while let Err(e) = self.try_release_network(key) {
            tracing::warn!(task = %key, error = %e, "cannot give back the task's address or ports yet; trying again");
            std::thread::sleep(wait);
            wait = (wait * 2).min(std::time::Duration::from_secs(5));
        }
    }

    fn try_release_network(&self, key: &str) -> Result<(), String> {
        let Some(r) = self.store.get(key) else {
            return Ok(());
        };
        let Some(arn) = r.value["taskArn"].as_str() else {
            return Ok(());
        };
        let private = TaskPrivate::of(&r.value);
        if let Some(ip) = private.ip.as_deref().and_then(|s| s.parse().ok()) {
            ipam::release(self.store.as_ref(), ip, arn)?;
        }
        if private.ports_mapped {
            if let Some(k) = parse_key(key) {
                if let Err(e) = berth_net::host::unmap_ports(&k.id) {
                    tracing::warn!(task = %key, error = %e, "cannot remove the task's port mappings");
                }
            }
        }
        berth_leases::ports::release_all(self.store.as_ref(), arn)
    }
}

/// The task's network mode: the task definition's, else ECS's default for where it runs
/// (awsvpc on Fargate, bridge on EC2).
pub(crate) fn network_mode<'a>(task: &Value, td: &'a Value) -> &'a str {
    match td["networkMode"].as_str() {
        Some(m) => m,
        None if task["launchType"] == "FARGATE" => "awsvpc",
        None => "bridge",
    }
}

/// One portMappings entry of a container definition.
struct PortMapping {
    container: String,
    container_port: u16,
    /// None (or 0): a dynamic port.
    host_port: Option<u16>,
    protocol: String,
}

fn port_mappings(td: &Value) -> Vec<PortMapping> {
    let mut out = vec![];
    for def in td["containerDefinitions"].as_array().into_iter().flatten() {
        for m in def["portMappings"].as_array().into_iter().flatten() {
            let Some(cp) = m["containerPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            out.push(PortMapping {
                container: def["name"].as_str().unwrap_or_default().to_string(),
                container_port: cp,
                host_port: m["hostPort"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0),
                protocol: m["protocol"].as_str().unwrap_or("tcp").to_string(),
            });
        }
    }
    out
}

/// EC2's private DNS name for an address: `ip-172-31-0-4.ec2.internal` in us-east-1,
/// `ip-172-31-0-4.REGION.compute.internal` elsewhere.
pub(crate) fn private_dns_name(ip: std::net::Ipv4Addr, region: &str) -> String {
    let dashed = ip.to_string().replace('.', "-");
    if region == "us-east-1" {
        format!("ip-{dashed}.ec2.internal")
    } else {
        format!("ip-{dashed}.{region}.compute.internal")
    }
}
