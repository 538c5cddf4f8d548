//! The threads that serve application load balancers' listeners (`berth up --lb-threads`),
//! each with a single-threaded runtime and its own SO_REUSEPORT socket on every listener
//! address. The kernel spreads connections over the threads, and a connection, its
//! requests and its connections to targets stay on one thread: no cross-thread wake-ups,
//! no shared pool lock (measured in BENCHMARKS.md, "Load balancers").

use crate::proxy::{Proxy, Slot};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

enum Cmd {
    Serve {
        id: u64,
        addr: SocketAddr,
        slot: Slot,
        bound: oneshot::Sender<io::Result<()>>,
    },
    Stop(u64),
}

pub struct Workers {
    cmds: Vec<mpsc::UnboundedSender<Cmd>>,
    next_id: AtomicU64,
}

/// A listener address being served; dropping it stops serving (connections in progress
/// finish on their own).
pub struct Listening {
    id: u64,
    cmds: Vec<mpsc::UnboundedSender<Cmd>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        for c in &self.cmds {
            let _ = c.send(Cmd::Stop(self.id));
        }
    }
}

impl Workers {
    /// Start `n` serving threads for `proxy`.
    pub fn start(proxy: Arc<Proxy>, n: usize) -> io::Result<Workers> {
        let mut cmds = vec![];
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let proxy = proxy.clone();
            std::thread::Builder::new()
                .name(format!("berth-lb-{i}"))
                .spawn(move || rt.block_on(run(proxy, rx)))?;
            cmds.push(tx);
        }
        Ok(Workers {
            cmds,
            next_id: AtomicU64::new(1),
        })
    }

    /// Serve `slot` on `addr` from every thread. Err if any thread cannot bind it.
    pub async fn listen(&self, addr: SocketAddr, slot: Slot) -> io::Result<Listening> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let listening = Listening {
            id,
            cmds: self.cmds.clone(),
        };
        for c in &self.cmds {
            let (bound, done) = oneshot::channel();
            c.send(Cmd::Serve {
                id,
                addr,
                slot: slot.clone(),
                bound,
            })
            .map_err(|_| io::Error::other("load balancer thread gone"))?;
            done.await
                .map_err(|_| io::Error::other("load balancer thread gone"))??;
        }
        Ok(listening)
    }
}

async fn run(proxy: Arc<Proxy>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut serving: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Serve {
                id,
                addr,
                slot,
                bound,
            } => match bind(addr) {
                Ok(l) => {
                    serving.insert(id, tokio::spawn(proxy.clone().serve(l, slot)));
                    let _ = bound.send(Ok(()));
                }
                Err(e) => {
                    let _ = bound.send(Err(e));
                }
            },
            Cmd::Stop(id) => {
                if let Some(h) = serving.remove(&id) {
                    h.abort();
                }
            }
        }
    }
}

/// A listening socket on `addr` shared with the other threads (SO_REUSEPORT), reusing
/// the address so a restart binds at once.
fn bind(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.set_reuseport(true)?;
    s.bind(addr)?;
    s.listen(1024)
}
