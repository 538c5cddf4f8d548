//! Active health checks: one task per registered target of every target group a load
//! balancer uses, checking as the group says (HTTP GET of the path with the matcher's
//! codes, HTTPS over TLS, HTTP/2 for HTTP2 groups, a gRPC call for GRPC ones, or a TCP
//! connect) every interval. A target becomes healthy after
//! HealthyThresholdCount passes in a row and unhealthy after UnhealthyThresholdCount
//! failures in a row; each change is written into the targets record (only that target,
//! compare-and-swap), which is what DescribeTargetHealth and the ALB read.

use crate::tls::Conn;
use crate::world::{HealthCheck, ProtocolVersion, Tg};
use berth_model::elbv2::TargetHealthState;
use berth_store::Store;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// (reason code, description) as ELB reports them.
    Fail(&'static str, String),
}

/// One check of `addr`: connect (over TLS for HTTPS checks), then for HTTP and HTTPS
/// checks ask for the path, as HTTP/1.1, or as HTTP/2 for HTTP2 groups, or as a gRPC call
/// for GRPC groups, whose grpc-status is what the matcher's codes are compared with.
pub async fn check(hc: &HealthCheck, addr: SocketAddrV4) -> Outcome {
    let timeout = Duration::from_secs(hc.timeout_secs.max(1));
    let failed = || Outcome::Fail("Target.FailedHealthChecks", "Health checks failed".into());
    let work = async {
        let tls = hc.protocol == "HTTPS";
        let h2 = hc.protocol != "TCP" && hc.version.h2();
        let Ok(conn) = crate::tls::open(addr, tls, h2).await else {
            return failed();
        };
        if hc.protocol == "TCP" {
            return Outcome::Pass;
        }
        let code = if h2 {
            h2_status(hc, addr, tls, conn).await
        } else {
            h1_status(hc, addr, conn).await
        };
        match code {
            Some(c) if hc.codes.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) => Outcome::Pass,
            Some(c) => Outcome::Fail(
                "Target.ResponseCodeMismatch",
                format!("Health checks failed with these codes: [{c}]"),
            ),
            None => failed(),
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(o) => o,
        Err(_) => Outcome::Fail("Target.Timeout", "Request timed out".into()),
    }
}

/// The status code of an HTTP/1.1 GET of the check's path.
async fn h1_status(hc: &HealthCheck, addr: SocketAddrV4, mut s: Conn) -> Option<u16> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ELB-HealthChecker/2.0\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        hc.path
    );
    s.write_all(req.as_bytes()).await.ok()?;
    // Only the status line matters.
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    line.strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
}

/// Over HTTP/2: the status code of a GET of the check's path, or for a GRPC group the
/// grpc-status of a call to it (an empty message; in the trailers, or in the headers
/// of a trailers-only answer).
async fn h2_status(hc: &HealthCheck, addr: SocketAddrV4, tls: bool, conn: Conn) -> Option<u16> {
    use http_body_util::{BodyExt, Full};
    use hyper::{header, Method, Request};
    let (mut send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(conn))
            .await
            .ok()?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let grpc = hc.version == ProtocolVersion::Grpc;
    let scheme = if tls { "https" } else { "http" };
    let asked = async {
        let req = Request::builder()
            .uri(format!("{scheme}://{addr}{}", hc.path))
            .version(hyper::Version::HTTP_2)
            .header(header::USER_AGENT, "ELB-HealthChecker/2.0");
        let req = if grpc {
            req.method(Method::POST)
                .header(header::CONTENT_TYPE, "application/grpc")
                .header(header::TE, "trailers")
                .body(Full::new(bytes::Bytes::from_static(&[0, 0, 0, 0, 0])))
        } else {
            req.method(Method::GET).body(Full::new(bytes::Bytes::new()))
        };
        let resp = send.send_request(req.ok()?).await.ok()?;
        if !grpc {
            return Some(resp.status().as_u16());
        }
        if let Some(c) = grpc_status(resp.headers()) {
            return Some(c);
        }
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if let Ok(t) = frame.ok()?.into_trailers() {
                return grpc_status(&t);
            }
        }
        None
    };
    let code = asked.await;
    driver.abort();
    code
}

fn grpc_status(h: &hyper::HeaderMap) -> Option<u16> {
    h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
}

/// Where a state stands after one more outcome: (passes in a row, failures in a row).
#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    passes: u32,
    fails: u32,
}

/// The state a target moves to, if it moves.
fn next_state(current: &str, s: Streak, hc: &HealthCheck) -> Option<&'static str> {
    if s.passes >= hc.healthy_threshold && current != "healthy" {
        return Some("healthy");
    }
    if s.fails >= hc.unhealthy_threshold && current != "unhealthy" {
        return Some("unhealthy");
    }
    None
}

/// Write a target's state, unless it is draining or gone.
pub fn write_state(
    store: &dyn Store,
    key: &str,
    id: &str,
    port: u16,
    state: &str,
    reason: Option<&str>,
    description: Option<&str>,
) {
    let Ok(state) = serde_json::from_value::<TargetHealthState>(json!(state)) else {
        return;
    };
    crate::update_targets(store, key, "record a target's health", |ts| {
        let Some(t) = ts
            .iter_mut()
            .find(|t| t.id == id && t.port == i64::from(port))
        else {
            return false;
        };
        if t.state == TargetHealthState::Draining
            || (t.state == state && t.reason.as_deref() == reason)
        {
            return false;
        }
        t.state = state;
        match (reason, description) {
            (Some(r), Some(d)) => {
                t.reason = Some(r.to_string());
                t.description = Some(d.to_string());
            }
            _ => {
                t.reason = None;
                t.description = None;
            }
        }
        true
    });
}

/// One checker per (group, target): it runs while the target is registered, not
/// draining, and the group is in use, and restarts when the group's check changes.
#[derive(Default)]
pub struct Checkers {
    running: HashMap<(String, String, u16), (HealthCheck, tokio::task::JoinHandle<()>)>,
}

impl Checkers {
    pub fn reconcile(&mut self, store: &Arc<dyn Store>, tgs: &HashMap<String, Tg>) {
        let mut wanted = HashMap::new();
        for tg in tgs.values().filter(|g| g.in_use) {
            for t in tg.targets.iter().filter(|t| t.state != "draining") {
                let Some(addr) = t.addr else { continue };
                let mut hc = tg.health.clone();
                let port = hc.port.unwrap_or(t.port);
                hc.port = Some(port);
                let addr = SocketAddrV4::new(*addr.ip(), port);
                wanted.insert(
                    (tg.arn.clone(), t.id.clone(), t.port),
                    (hc, addr, tg.targets_key.clone(), t.state.clone()),
                );
            }
        }
        self.running.retain(|k, (hc, h)| {
            let keep = wanted.get(k).is_some_and(|w| w.0 == *hc);
            if !keep {
                h.abort();
            }
            keep
        });
        for (k, (hc, addr, key, state)) in wanted {
            if self.running.contains_key(&k) {
                continue;
            }
            let (store, check_hc) = (store.clone(), hc.clone());
            let (id, port) = (k.1.clone(), k.2);
            let h = tokio::spawn(async move {
                run(store, check_hc, addr, key, id, port, state).await;
            });
            self.running.insert(k, (hc, h));
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    hc: HealthCheck,
    addr: SocketAddrV4,
    key: String,
    id: String,
    port: u16,
    mut state: String,
) {
    let mut streak = Streak::default();
    let mut tick = tokio::time::interval(Duration::from_secs(hc.interval_secs.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let outcome = check(&hc, addr).await;
        let reason = match &outcome {
            Outcome::Pass => {
                streak = Streak {
                    passes: streak.passes + 1,
                    fails: 0,
                };
                None
            }
            Outcome::Fail(code, desc) => {
                streak = Streak {
                    passes: 0,
                    fails: streak.fails + 1,
                };
                Some((*code, desc.clone()))
            }
        };
        let Some(new) = next_state(&state, streak, &hc) else {
            continue;
        };
        state = new.to_string();
        let (store, key, id) = (store.clone(), key.clone(), id.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let (r, d) = match &reason {
                Some((r, d)) => (Some(*r), Some(d.as_str())),
                None => (None, None),
            };
            write_state(store.as_ref(), &key, &id, port, new, r, d);
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(protocol: &str) -> HealthCheck {
        HealthCheck {
            protocol: protocol.into(),
            version: ProtocolVersion::Http1,
            port: None,
            path: "/health".into(),
            interval_secs: 5,
            timeout_secs: 2,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            codes: vec![(200, 299)],
        }
    }

    #[test]
    fn thresholds_move_states() {
        let h = hc("HTTP");
        let s = |passes, fails| Streak { passes, fails };
        assert_eq!(next_state("initial", s(1, 0), &h), None);
        assert_eq!(next_state("initial", s(2, 0), &h), Some("healthy"));
        assert_eq!(next_state("healthy", s(3, 0), &h), None);
        assert_eq!(next_state("healthy", s(0, 2), &h), None);
        assert_eq!(next_state("healthy", s(0, 3), &h), Some("unhealthy"));
        assert_eq!(next_state("initial", s(0, 3), &h), Some("unhealthy"));
    }

    #[tokio::test]
    async fn http_and_tcp_checks_against_real_sockets() {
        // A server answering 200 on /health and 503 elsewhere.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let status = if req.starts_with("GET /health ") {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                });
            }
        });
        assert_eq!(check(&hc("HTTP"), addr).await, Outcome::Pass);
        let mut other = hc("HTTP");
        other.path = "/".into();
        assert_eq!(
            check(&other, addr).await,
            Outcome::Fail(
                "Target.ResponseCodeMismatch",
                "Health checks failed with these codes: [503]".into()
            )
        );
        assert_eq!(check(&hc("TCP"), addr).await, Outcome::Pass);
        // Nothing listening.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            match l.local_addr().unwrap() {
                std::net::SocketAddr::V4(a) => a,
                _ => unreachable!(),
            }
        };
        assert!(matches!(
            check(&hc("TCP"), closed).await,
            Outcome::Fail("Target.FailedHealthChecks", _)
        ));
    }
}
