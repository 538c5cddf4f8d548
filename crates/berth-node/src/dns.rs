//! The tasks' resolver, on the bridge at 169.254.170.2:53 (UDP). It answers for the names
//! Berth owns (its registry hosts, `ACCOUNT.dkr.ecr.REGION.localhost`, with the address
//! where tasks reach Berth; load balancers' names, with their addresses, through a
//! `Lookup`), and relays every other query,
//! unchanged, to the host's own resolvers (from /etc/resolv.conf).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// The question of a query: the name (lower case, no trailing dot), its type and where it
/// ends in the message.
fn question(msg: &[u8]) -> Option<(String, u16, u16, usize)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels = vec![];
    loop {
        let len = *msg.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression cannot appear in a query's only question
        }
        labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(at + 2)?, *msg.get(at + 3)?]);
    Some((labels.join("."), qtype, qclass, at + 4))
}

/// The address of a name Berth owns.
pub fn owned(name: &str, berth: Ipv4Addr) -> Option<Ipv4Addr> {
    let labels: Vec<&str> = name.split('.').collect();
    // ACCOUNT.dkr.ecr.REGION.localhost
    let registry = labels.len() == 5
        && labels[0].len() == 12
        && labels[0].bytes().all(|b| b.is_ascii_digit())
        && labels[1] == "dkr"
        && labels[2] == "ecr"
        && labels[4] == "localhost";
    registry.then_some(berth)
}

/// The answer to a query for an owned name: its addresses for A, no records for the
/// rest; NXDOMAIN for an owned name that names nothing (no addresses at all).
fn answer(query: &[u8], end: usize, qtype: u16, ips: &[Ipv4Addr]) -> Vec<u8> {
    let mut out = query[..end].to_vec();
    let records: &[Ipv4Addr] = if qtype == TYPE_A { ips } else { &[] };
    // QR, opcode kept, AA, RD kept; RA; NOERROR or NXDOMAIN.
    out[2] = 0x80 | (query[2] & 0x79) | 0x04;
    out[3] = if ips.is_empty() { 0x83 } else { 0x80 };
    out[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    out[8..12].copy_from_slice(&[0, 0, 0, 0]);
    for ip in records {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

/// Other names Berth owns, with their addresses (load balancers' DNS names); `None` for
/// a name that is not Berth's, an empty list for one of Berth's that names nothing.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Vec<Ipv4Addr>> + Send + Sync>;

/// The host's resolvers, as /etc/resolv.conf names them.
fn upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Relay a query to the host's resolvers, the first that answers within 2 s each.
async fn relay(query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams() {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.send_to(query, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await
        {
            if from == up && n >= 2 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

/// Serve queries on `sock` until the process ends.
pub async fn serve(sock: UdpSocket, berth: Ipv4Addr, lookup: Lookup) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (sock, lookup) = (sock.clone(), lookup.clone());
        tokio::spawn(async move {
            let reply = match question(&query) {
                Some((name, qtype, CLASS_IN, end)) => {
                    match owned(&name, berth)
                        .map(|ip| vec![ip])
                        .or_else(|| lookup(&name))
                    {
                        Some(ips) => Some(answer(&query, end, qtype, &ips)),
                        None => relay(&query).await,
                    }
                }
                _ => relay(&query).await,
            };
            if let Some(r) = reply {
                let _ = sock.send_to(&r, peer).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn answers_registry_names_with_berths_address() {
        let ip = Ipv4Addr::new(169, 254, 170, 2);
        let q = query("000000000000.DKR.ecr.us-east-1.localhost", TYPE_A);
        let (name, qtype, class, end) = question(&q).unwrap();
        assert_eq!(name, "000000000000.dkr.ecr.us-east-1.localhost");
        assert_eq!((qtype, class, end), (TYPE_A, CLASS_IN, q.len()));
        assert_eq!(owned(&name, ip), Some(ip));
        let a = answer(&q, end, qtype, &[ip]);
        assert_eq!(&a[..2], &[0x12, 0x34], "same id");
        assert_eq!(a[2] & 0x80, 0x80, "a response");
        assert_eq!(a[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert_eq!(&a[a.len() - 4..], &ip.octets());
        // AAAA: no records, still NOERROR.
        let q6 = query("000000000000.dkr.ecr.us-east-1.localhost", 28);
        let a6 = answer(&q6, q6.len(), 28, &[ip]);
        assert_eq!(u16::from_be_bytes([a6[6], a6[7]]), 0);
        assert_eq!(a6.len(), q6.len());
        // Several addresses; none is NXDOMAIN.
        let two = [ip, Ipv4Addr::new(172, 31, 0, 9)];
        let a2 = answer(&q, end, TYPE_A, &two);
        assert_eq!(u16::from_be_bytes([a2[6], a2[7]]), 2);
        assert_eq!(&a2[a2.len() - 4..], &two[1].octets());
        let nx = answer(&q, end, TYPE_A, &[]);
        assert_eq!(nx[3] & 0x0f, 3, "NXDOMAIN");
    }

    #[test]
    fn other_names_are_not_berths() {
        let ip = Ipv4Addr::new(169, 254, 170, 2);
        for n in [
            "pypi.org",
            "dkr.ecr.us-east-1.localhost",
            "12345.dkr.ecr.us-east-1.localhost",
            "localhost",
        ] {
            assert_eq!(owned(n, ip), None, "{n}");
        }
        assert!(question(&[0u8; 5]).is_none());
    }
}
