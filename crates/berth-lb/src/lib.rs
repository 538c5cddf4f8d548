//! berth-lb: the load balancers' data plane. It follows the ELBv2 API's records in the
//! store and makes them real on this host: each load balancer's addresses on the Berth
//! bridge (the API leased them), application load balancers' listeners as an HTTP reverse
//! proxy bound to those addresses (`proxy`), network load balancers' listeners as kernel
//! DNAT (`nlb`), health checks that write each target's state (`health`), and draining:
//! a deregistered target leaves its group once its requests are done or its delay is up.
//! `names` answers the load balancers' DNS names for Berth's resolver.

mod h1;
pub mod health;
pub mod nlb;
pub mod proxy;
pub mod rules;
pub mod tls;
#[cfg(test)]
mod tls_tests;
pub mod workers;
pub mod world;

use berth_model::elbv2::TargetHealthState;
use berth_store::{Cond, Op, Store};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use world::{LbType, World};

/// DNS names of load balancers (lower case) and their addresses.
pub type Names = Arc<RwLock<HashMap<String, Vec<Ipv4Addr>>>>;

/// What Berth's resolver answers for `name`: the load balancer's addresses; nothing (an
/// NXDOMAIN) for another name under `elb.localhost`; None for names not Berth's.
pub fn resolve(names: &Names, name: &str) -> Option<Vec<Ipv4Addr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(ips) = names.read().expect("lock").get(&name) {
        return Some(ips.clone());
    }
    name.ends_with(".elb.localhost").then(Vec::new)
}

pub struct Options {
    /// The host's side of the Berth network; without it there is nowhere to put the load
    /// balancers' addresses, and only health checks and draining run.
    pub host: Option<Arc<berth_net::HostNetwork>>,
    /// `--publish-lb`: listeners also bind this host address.
    pub publish: Option<Ipv4Addr>,
    /// This host's instance id: instance targets with it are the host itself.
    pub instance_id: Option<String>,
    /// Where the load balancers' DNS names are published (for Berth's resolver).
    pub names: Names,
    /// Threads serving application load balancers (None: `default_threads`).
    pub threads: Option<usize>,
}

/// One per core, as nginx's `worker_processes auto`: on 2 cores, with wrk and the target
/// on the same cores, two threads served more requests than one with a shorter tail
/// (BENCHMARKS.md, "Load balancers").
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub struct DataPlane {
    store: Arc<dyn Store>,
    opts: Options,
    proxy: Arc<proxy::Proxy>,
    workers: workers::Workers,
    names: Names,
}

/// A listener bound on one address (served until dropped).
struct Bound {
    listener_arn: String,
    slot: proxy::Slot,
    _serving: workers::Listening,
}

#[derive(Default)]
struct State {
    prefixes: BTreeSet<String>,
    addresses: HashSet<Ipv4Addr>,
    bound: HashMap<SocketAddr, Bound>,
    nlb_rules: Option<nlb::Rules>,
    checkers: health::Checkers,
}

impl DataPlane {
    pub fn new(store: Arc<dyn Store>, opts: Options) -> std::io::Result<Arc<DataPlane>> {
        let proxy = Arc::new(proxy::Proxy::new());
        let threads = opts.threads.unwrap_or_else(default_threads);
        Ok(Arc::new(DataPlane {
            store,
            workers: workers::Workers::start(proxy.clone(), threads)?,
            proxy,
            names: opts.names.clone(),
            opts,
        }))
    }

    /// Follow the store until it closes.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::{RecvError, TryRecvError};
            let mut events = self.store.watch();
            let mut st = State::default();
            // Every account's and region's ELBv2 records, found once; new ones by events.
            let me = self.clone();
            st.prefixes = tokio::task::spawn_blocking(move || {
                me.store
                    .list("/")
                    .iter()
                    .filter_map(|r| prefix_of(&r.key))
                    .collect()
            })
            .await
            .unwrap_or_default();
            // Draining targets need a clock; so does nothing else.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut draining = true;
            loop {
                let mut due = false;
                tokio::select! {
                    _ = tick.tick() => due = draining,
                    ev = events.recv() => match ev {
                        Ok(e) => due |= st.note(&e.key),
                        Err(RecvError::Lagged(_)) => due = true,
                        Err(RecvError::Closed) => return,
                    },
                }
                loop {
                    match events.try_recv() {
                        Ok(e) => due |= st.note(&e.key),
                        Err(TryRecvError::Lagged(_)) => due = true,
                        Err(_) => break,
                    }
                }
                if due {
                    draining = self.pass(&mut st).await;
                }
            }
        })
    }

    /// One reconciliation. Returns whether a target is draining (the tick must go on).
    async fn pass(self: &Arc<Self>, st: &mut State) -> bool {
        let me = self.clone();
        let prefixes = st.prefixes.clone();
        let local = world::Local {
            instance_id: self.opts.instance_id.clone(),
        };
        let Ok(w) =
            tokio::task::spawn_blocking(move || world::load(me.store.as_ref(), &prefixes, &local))
                .await
        else {
            return true;
        };
        self.addresses(st, &w);
        self.listeners(st, &w).await;
        self.kernel_rules(st, &w);
        st.checkers.reconcile(&self.store, &w.tgs);
        self.proxy.prune(&w);
        {
            let mut names = self.names.write().expect("lock");
            names.clear();
            for lb in &w.lbs {
                names.insert(lb.dns_name.clone(), lb.ips.clone());
            }
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.finish_draining(&w))
            .await
            .unwrap_or(true)
    }

    /// Each load balancer's addresses on the bridge, and no others.
    fn addresses(&self, st: &mut State, w: &World) {
        let Some(host) = &self.opts.host else { return };
        let want: HashSet<Ipv4Addr> = w.lbs.iter().flat_map(|l| l.ips.iter().copied()).collect();
        for ip in want.difference(&st.addresses) {
            if let Err(e) = host.add_bridge_address(*ip) {
                tracing::warn!(%ip, error = %e, "cannot give a load balancer its address");
            }
        }
        for ip in st.addresses.difference(&want) {
            let _ = host.remove_bridge_address(*ip);
        }
        st.addresses = want;
    }

    /// Application load balancers' listeners bound on each of their addresses (and the
    /// published one), each serving the listener's current view.
    async fn listeners(&self, st: &mut State, w: &World) {
        let mut want: HashMap<SocketAddr, (String, Arc<proxy::ListenerView>)> = HashMap::new();
        for lb in w.lbs.iter().filter(|l| l.lb_type == LbType::Application) {
            for l in &lb.listeners {
                let view = Arc::new(self.proxy.view(w, lb, l));
                let mut ips: Vec<Ipv4Addr> = if self.opts.host.is_some() {
                    lb.ips.clone()
                } else {
                    vec![]
                };
                // An internal load balancer is never published on the host's address.
                ips.extend(self.opts.publish.filter(|_| !lb.internal));
                for ip in ips {
                    want.insert(
                        SocketAddr::new(IpAddr::V4(ip), l.port),
                        (l.arn.clone(), view.clone()),
                    );
                }
            }
        }
        st.bound
            .retain(|a, b| want.get(a).is_some_and(|(arn, _)| *arn == b.listener_arn));
        for (addr, (arn, view)) in want {
            if let Some(b) = st.bound.get(&addr) {
                *b.slot.write().expect("lock") = view;
                continue;
            }
            let slot: proxy::Slot = Arc::new(RwLock::new(view));
            match self.workers.listen(addr, slot.clone()).await {
                Ok(serving) => {
                    st.bound.insert(
                        addr,
                        Bound {
                            listener_arn: arn,
                            slot,
                            _serving: serving,
                        },
                    );
                }
                Err(e) => tracing::warn!(%addr, error = %e, "cannot bind a load balancer listener"),
            }
        }
    }

    fn kernel_rules(&self, st: &mut State, w: &World) {
        let Some(host) = &self.opts.host else { return };
        let rules = nlb::rules(w, self.opts.publish);
        if st.nlb_rules.as_ref() == Some(&rules) {
            return;
        }
        match host.set_lb_rules(&rules.0, &rules.1) {
            Ok(()) => st.nlb_rules = Some(rules),
            Err(e) => tracing::warn!(error = %e, "cannot set the network load balancers' rules"),
        }
    }

    /// Remove draining targets whose requests are done (application load balancers) or
    /// whose deregistration delay is up. Returns whether any is still draining.
    fn finish_draining(&self, w: &World) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut left = false;
        for tg in w.tgs.values() {
            let http = tg.protocol == "HTTP" || tg.protocol == "HTTPS";
            let done: Vec<(&str, u16)> = tg
                .targets
                .iter()
                .filter(|t| t.state == "draining")
                .filter(|t| {
                    let timed_out = t.drain_deadline.is_none_or(|d| now >= d);
                    let idle = http && t.addr.is_none_or(|a| self.proxy.inflight(&tg.arn, a) == 0);
                    let finished = timed_out || idle || !tg.in_use;
                    left |= !finished;
                    finished
                })
                .map(|t| (t.id.as_str(), t.port))
                .collect();
            if !done.is_empty() {
                remove_targets(self.store.as_ref(), &tg.targets_key, &done);
            }
        }
        left
    }
}

impl State {
    /// Whether an event concerns the load balancers; learns new account/region prefixes.
    fn note(&mut self, key: &str) -> bool {
        match prefix_of(key) {
            Some(p) => {
                self.prefixes.insert(p);
                true
            }
            None => false,
        }
    }
}

/// `/{account}/{region}/elbv2/` of an ELBv2 record's key.
fn prefix_of(key: &str) -> Option<String> {
    berth_model::elbv2::key::scope_prefix_of(key)
}

/// Take drained targets out of a targets record (still draining when removed).
fn remove_targets(store: &dyn Store, key: &str, done: &[(&str, u16)]) {
    update_targets(store, key, "remove drained targets", |ts| {
        let before = ts.len();
        ts.retain(|t| {
            !(t.state == TargetHealthState::Draining
                && done
                    .iter()
                    .any(|(id, port)| t.id == *id && t.port == i64::from(*port)))
        });
        ts.len() != before
    });
}

/// Change a targets record's list with `change` (which says whether it changed anything),
/// compare-and-swap, again on a conflict: the API writes the same record.
pub(crate) fn update_targets(
    store: &dyn Store,
    key: &str,
    what: &str,
    mut change: impl FnMut(&mut Vec<berth_model::elbv2::Target>) -> bool,
) {
    for _ in 0..20 {
        let Some(rec) = store.get(key) else { return };
        let mut t: berth_model::elbv2::TargetsRecord =
            match berth_model::elbv2::from_value(&rec.value) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(%key, error = %e, "cannot {what}: unreadable targets record");
                    return;
                }
            };
        if !change(&mut t.targets) {
            return;
        }
        let v = berth_model::elbv2::to_value(&t);
        match store.txn(
            &[Cond::Revision(key.to_string(), rec.revision)],
            vec![Op::Put(key.to_string(), v)],
        ) {
            Ok(_) => return,
            Err(berth_store::StoreError::Conflict(_)) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot {what}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_elbv2_keys() {
        assert_eq!(
            prefix_of("/000000000000/us-east-1/elbv2/lb/web").as_deref(),
            Some("/000000000000/us-east-1/elbv2/")
        );
        assert_eq!(prefix_of("/000000000000/us-east-1/ecs/task/x"), None);
    }
}
