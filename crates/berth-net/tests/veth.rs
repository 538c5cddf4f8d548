//! A task namespace wired to a bridge with the real kernel: the task's address reaches the
//! host through the bridge, and detaching removes both ends. Needs root (CI has it).

use berth_net::netlink::{link_exists, Netlink};
use berth_net::task::{attach, detach_inside, open_host_side, TaskNetwork};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn task_namespace_reaches_the_host_over_the_bridge() {
    if !is_root() {
        eprintln!("SKIPPED: needs root for network namespaces");
        return;
    }
    let bridge = "berthtst0";
    let mut nl = Netlink::open().unwrap();
    nl.create_bridge(bridge).unwrap();
    let gw: Ipv4Addr = "10.251.7.1".parse().unwrap();
    nl.add_address(bridge, gw, 24).unwrap();
    let listener = TcpListener::bind((gw, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();

    let net = TaskNetwork {
        bridge: bridge.into(),
        host_link: "berthtst1".into(),
        ip: "10.251.7.4".parse().unwrap(),
        prefix_len: 24,
        gateway: gw,
    };
    let n2 = net.clone();
    let (wired_tx, wired) = std::sync::mpsc::channel();
    // The "task": a thread that leaves for a namespace of its own, as a supervisor does.
    let task = std::thread::spawn(move || -> std::io::Result<String> {
        let r = (|| {
            let host = open_host_side(&n2)?;
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            attach(host, &n2)
        })();
        wired_tx
            .send(r.as_ref().map_err(|e| e.to_string()).cloned())
            .unwrap();
        r?;
        let mut s = TcpStream::connect((gw, port))?;
        s.write_all(b"hello")?;
        let mut back = String::new();
        s.read_to_string(&mut back)?;
        detach_inside()?;
        Ok(back)
    });
    if let Err(e) = wired.recv().unwrap() {
        let _ = nl.delete_link(bridge);
        panic!("wiring the task failed: {e}");
    }
    let (mut conn, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "10.251.7.4");
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    conn.write_all(b"seen").unwrap();
    drop(conn);
    assert_eq!(task.join().unwrap().unwrap(), "seen");
    assert!(
        !link_exists("berthtst1"),
        "the host end went with the task end"
    );
    nl.delete_link(bridge).unwrap();
    assert!(!link_exists(bridge));
}
