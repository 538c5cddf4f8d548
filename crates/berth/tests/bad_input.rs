//! Bad input gets AWS's error with a 4xx, the server stays up, and nothing is written.

mod common;

use common::Server;
use serde_json::json;

fn cluster_count(s: &Server) -> usize {
    let (status, v) = s.ecs_raw("ListClusters", b"{}");
    assert_eq!(status, 200);
    v["clusterArns"].as_array().unwrap().len()
}

#[test]
fn malformed_and_invalid_requests() {
    let s = Server::start();
    assert_eq!(
        s.ecs_raw("CreateCluster", br#"{"clusterName":"keep"}"#).0,
        200
    );

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "CreateCluster",
            b"{not json".to_vec(),
            400,
            "SerializationException",
        ),
        (
            "CreateCluster",
            br#"["a"]"#.to_vec(),
            400,
            "SerializationException",
        ),
        (
            "CreateCluster",
            br#"{"clusterName": 5}"#.to_vec(),
            400,
            "SerializationException",
        ),
        (
            "CreateCluster",
            br#"{"clusterName": "has space"}"#.to_vec(),
            400,
            "InvalidParameterException",
        ),
        (
            "CreateCluster",
            json!({"clusterName": "x".repeat(256)})
                .to_string()
                .into_bytes(),
            400,
            "InvalidParameterException",
        ),
        (
            "CreateCluster",
            br#"{"clusterName": "ok", "tags": "notalist"}"#.to_vec(),
            400,
            "SerializationException",
        ),
        (
            "ListClusters",
            br#"{"maxResults": 1000}"#.to_vec(),
            400,
            "InvalidParameterException",
        ),
        (
            "ListClusters",
            br#"{"maxResults": 1.5}"#.to_vec(),
            400,
            "SerializationException",
        ),
        (
            "ListClusters",
            br#"{"nextToken": "%%%"}"#.to_vec(),
            400,
            "InvalidParameterException",
        ),
        (
            "RegisterTaskDefinition",
            br#"{"family": "f"}"#.to_vec(),
            400,
            "InvalidParameterException",
        ),
        (
            "RegisterTaskDefinition",
            br#"{"family": "f", "containerDefinitions": [], "networkMode": "mesh"}"#.to_vec(),
            400,
            "InvalidParameterException",
        ),
        (
            "RunTask",
            br#"{"taskDefinition": "f", "launchType": "MOON"}"#.to_vec(),
            400,
            "InvalidParameterException",
        ),
        (
            "NoSuchOperation",
            b"{}".to_vec(),
            400,
            "UnknownOperationException",
        ),
    ];
    for (op, body, status, code) in cases {
        let (got, v) = s.ecs_raw(op, &body);
        assert_eq!(
            (got, v["__type"].as_str().unwrap_or_default()),
            (status, code),
            "{op} {}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{op}: message present"
        );
    }

    // Missing target header.
    let (status, _, body) = s
        .raw(
            "POST",
            "/",
            &[("Content-Type", "application/x-amz-json-1.1")],
            b"{}",
        )
        .unwrap();
    assert_eq!(status, 501, "{body}");

    // An oversized body is refused before it is read.
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        write!(
            c,
            "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonEC2ContainerServiceV20141113.CreateCluster\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            11 * 1024 * 1024
        )
        .unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413");
    }

    // Still up, and only the one good cluster exists.
    assert_eq!(cluster_count(&s), 1);
}

#[test]
fn unsigned_requests_are_refused_when_auth_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), &["--enforce-auth"]);
    let (status, v) = s.ecs_raw("ListClusters", b"{}");
    assert_eq!(status, 403);
    assert_eq!(v["__type"], "MissingAuthenticationToken");
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_are_verified_when_auth_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(
        dir.path(),
        &[
            "--enforce-auth",
            "--access-key-id",
            "AKIDBERTH",
            "--secret-access-key",
            "s3cret",
        ],
    );
    let good = s.ecs_as("AKIDBERTH", "s3cret", "us-east-1");
    good.create_cluster()
        .cluster_name("signed")
        .send()
        .await
        .unwrap();
    let bad_secret = s.ecs_as("AKIDBERTH", "wrong", "us-east-1");
    let err = bad_secret
        .create_cluster()
        .cluster_name("forged")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        common::code(&err.into_service_error()),
        "InvalidSignatureException"
    );
    let bad_key = s.ecs_as("AKIDOTHER", "s3cret", "us-east-1");
    let err = bad_key.list_clusters().send().await.unwrap_err();
    assert_eq!(
        common::code(&err.into_service_error()),
        "UnrecognizedClientException"
    );
    let arns = good.list_clusters().send().await.unwrap();
    assert_eq!(
        arns.cluster_arns(),
        ["arn:aws:ecs:us-east-1:000000000000:cluster/signed"]
    );
}
