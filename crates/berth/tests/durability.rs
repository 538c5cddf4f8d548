//! An acknowledged write survives SIGKILL of the server.

mod common;

use common::Server;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let addr = s.addr.clone();

    // Two writers stream CreateCluster and RegisterTaskDefinition until the server dies.
    let mut writers = vec![];
    for w in 0..2 {
        let acked = acked.clone();
        let stop = stop.clone();
        let addr = addr.clone();
        writers.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{w}-{i}");
                let (op, body) = if i % 2 == 0 {
                    ("CreateCluster", serde_json::json!({"clusterName": name}))
                } else {
                    (
                        "RegisterTaskDefinition",
                        serde_json::json!({"family": name, "memory": "128",
                            "containerDefinitions": [{"name": "c", "image": "busybox"}]}),
                    )
                };
                match common::raw_at(
                    &addr,
                    "POST",
                    "/",
                    &[(
                        "X-Amz-Target",
                        &format!("AmazonEC2ContainerServiceV20141113.{op}"),
                    )],
                    body.to_string().as_bytes(),
                ) {
                    Ok((200, _, _)) => acked.lock().unwrap().push(format!("{op}:{name}")),
                    _ => break,
                }
                i += 1;
            }
        }));
    }
    // Kill once a good number of writes have been acknowledged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.lock().unwrap().len() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "writes were not acknowledged"
        );
        std::thread::yield_now();
    }
    s.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    drop(s);

    let s = Server::start_in(dir.path(), &[]);
    let mut cluster_names = std::collections::HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let body = serde_json::json!({"maxResults": 100, "nextToken": token}).to_string();
        let (status, v) = s.ecs_raw("ListClusters", body.as_bytes());
        assert_eq!(status, 200);
        for a in v["clusterArns"].as_array().unwrap() {
            cluster_names.insert(a.as_str().unwrap().rsplit('/').next().unwrap().to_string());
        }
        token = v["nextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for entry in &acked {
        let (op, name) = entry.split_once(':').unwrap();
        if op == "CreateCluster" {
            assert!(
                cluster_names.contains(name),
                "acknowledged cluster {name} lost"
            );
        } else {
            let (status, v) = s.ecs_raw(
                "DescribeTaskDefinition",
                serde_json::json!({"taskDefinition": name})
                    .to_string()
                    .as_bytes(),
            );
            assert_eq!(status, 200, "acknowledged task definition {name} lost: {v}");
        }
    }
    assert!(acked.len() >= 100);
}
