//! ECS records that the API (berth-ecs), the node, the leases and the load balancers'
//! data plane share: task and task-definition keys and ARNs, a task's statuses, and the
//! task record's private section (`_berth`, never returned by DescribeTasks).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `/{account}/{region}/ecs/task/{cluster}/{id}` and
/// `arn:aws:ecs:{region}:{account}:task/{cluster}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskId {
    pub account: String,
    pub region: String,
    pub cluster: String,
    pub id: String,
}

impl TaskId {
    pub fn parse_key(key: &str) -> Option<TaskId> {
        let p: Vec<&str> = key.split('/').collect();
        // ["", account, region, "ecs", "task", cluster, id]
        (p.len() == 7 && p[0].is_empty() && p[3] == "ecs" && p[4] == "task" && !p[6].is_empty())
            .then(|| TaskId {
                account: p[1].into(),
                region: p[2].into(),
                cluster: p[5].into(),
                id: p[6].into(),
            })
    }

    /// A task ARN in the long format (the only one Berth writes).
    pub fn parse_arn(arn: &str) -> Option<TaskId> {
        let (region, account, resource) = ecs_arn(arn)?;
        let (cluster, id) = resource.strip_prefix("task/")?.split_once('/')?;
        (!cluster.is_empty() && !id.is_empty() && !id.contains('/')).then(|| TaskId {
            account: account.into(),
            region: region.into(),
            cluster: cluster.into(),
            id: id.into(),
        })
    }

    pub fn key(&self) -> String {
        format!(
            "/{}/{}/ecs/task/{}/{}",
            self.account, self.region, self.cluster, self.id
        )
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:aws:ecs:{}:{}:task/{}/{}",
            self.region, self.account, self.cluster, self.id
        )
    }
}

/// A task definition revision: `/{account}/{region}/ecs/taskdef/{family}/{revision:010}`
/// and `arn:aws:ecs:{region}:{account}:task-definition/{family}:{revision}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinitionId {
    pub account: String,
    pub region: String,
    pub family: String,
    pub revision: u64,
}

impl TaskDefinitionId {
    pub fn parse_arn(arn: &str) -> Option<TaskDefinitionId> {
        let (region, account, resource) = ecs_arn(arn)?;
        let (family, rev) = resource
            .strip_prefix("task-definition/")?
            .rsplit_once(':')?;
        Some(TaskDefinitionId {
            account: account.into(),
            region: region.into(),
            family: family.into(),
            revision: rev.parse().ok().filter(|r| *r > 0)?,
        })
    }

    /// Revisions are zero-padded so a family's keys list in revision order.
    pub fn key(&self) -> String {
        format!(
            "/{}/{}/ecs/taskdef/{}/{:010}",
            self.account, self.region, self.family, self.revision
        )
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:aws:ecs:{}:{}:task-definition/{}:{}",
            self.region, self.account, self.family, self.revision
        )
    }
}

/// What a task keeps of its task definition (`TaskPrivate::definition`): the record as
/// stored, without its tags, which can change after the task started.
pub fn launch_definition(task_definition: &Value) -> Value {
    let mut d = task_definition.clone();
    if let Some(o) = d.as_object_mut() {
        o.remove("tags");
    }
    d
}

/// (region, account, resource) of an `arn:aws:ecs:...` ARN.
fn ecs_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut it = arn.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    let _partition = it.next()?;
    if it.next()? != "ecs" {
        return None;
    }
    Some((it.next()?, it.next()?, it.next()?))
}

/// A task's lastStatus, in the order ECS steps through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LastStatus {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl LastStatus {
    /// Every status, in ECS's order.
    pub const ALL: [LastStatus; 8] = [
        LastStatus::Provisioning,
        LastStatus::Pending,
        LastStatus::Activating,
        LastStatus::Running,
        LastStatus::Deactivating,
        LastStatus::Stopping,
        LastStatus::Deprovisioning,
        LastStatus::Stopped,
    ];

    /// A task record's lastStatus (None: absent or not one ECS knows).
    pub fn of(task: &Value) -> Option<LastStatus> {
        serde_json::from_value(task.get("lastStatus")?.clone()).ok()
    }
}

/// A task's desiredStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredStatus {
    Running,
    Stopped,
}

impl DesiredStatus {
    pub fn of(task: &Value) -> Option<DesiredStatus> {
        serde_json::from_value(task.get("desiredStatus")?.clone()).ok()
    }
}

/// Whether a task record is final: STOPPED is never left.
pub fn is_stopped(task: &Value) -> bool {
    LastStatus::of(task) == Some(LastStatus::Stopped)
}

/// The task record's private section (`_berth`): what the node and the scheduler need
/// beyond ECS's shape. Fields it does not know are kept (`extra`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskPrivate {
    /// RunTask's networkConfiguration, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<Value>,
    /// The awsvpc subnets the task may take its address from, with their ranges, so the
    /// node leases an address without asking EC2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<TaskSubnet>,
    /// The task definition as it was when the task was started: the node launches from
    /// it, so deregistering or deleting the definition never strands a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
    /// What the task takes from its container instance (EC2 launch type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Value>,
    /// The task's address on Berth's network, and its range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// The unguessable path parts of the in-task endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ports_mapped: bool,
    /// How many times each container's restart policy restarted it, by container name
    /// (DescribeTasks has no member for it; the metadata endpoint's RestartCount does).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub restart_counts: std::collections::BTreeMap<String, u32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The task's random ids that the in-task endpoints' paths carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateId {
    /// `/v4/{endpointToken}-{container}` (and v3).
    EndpointToken,
    /// `/v2/credentials/{credentialsId}`.
    CredentialsId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSubnet {
    pub subnet_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
}

impl TaskPrivate {
    /// The private section of a task record (empty when it has none or it is malformed).
    pub fn of(task: &Value) -> TaskPrivate {
        task.get("_berth")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default()
    }

    /// One string field of a task record's private section, borrowed: for scans over
    /// many tasks, which should not copy each one's whole section (its task definition).
    pub fn str_in(task: &Value, field: PrivateId) -> Option<&str> {
        let name = match field {
            PrivateId::EndpointToken => "endpointToken",
            PrivateId::CredentialsId => "credentialsId",
        };
        task.get("_berth")?.get(name)?.as_str()
    }

    /// The essential containers of the task's definition that have a health check, by
    /// name, borrowed (the scheduler and the node ask on every pass and status change,
    /// which should not copy the whole definition). ECS reckons a task's health from these.
    pub fn health_checked_in(task: &Value) -> Vec<&str> {
        task.get("_berth")
            .and_then(|p| p.get("definition"))
            .and_then(|d| d.get("containerDefinitions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c["essential"] != false && c.get("healthCheck").is_some())
            .filter_map(|c| c["name"].as_str())
            .collect()
    }

    /// Write it back into the task record.
    pub fn store_in(&self, task: &mut Value) {
        task["_berth"] = serde_json::to_value(self).expect("the private section serializes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn task_keys_and_arns_round_trip() {
        let k = "/000000000000/us-east-1/ecs/task/demo/0123abcd";
        let t = TaskId::parse_key(k).unwrap();
        assert_eq!(t.key(), k);
        assert_eq!(
            t.arn(),
            "arn:aws:ecs:us-east-1:000000000000:task/demo/0123abcd"
        );
        assert_eq!(TaskId::parse_arn(&t.arn()), Some(t));
        for bad in [
            "/a/b/ecs/task/c",
            "/a/b/ecs/service/c/d",
            "/a/b/ecs/task/c/",
            "x",
        ] {
            assert!(TaskId::parse_key(bad).is_none(), "{bad}");
        }
        for bad in [
            "arn:aws:ecs:r:a:task/onlyid",
            "arn:aws:ec2:r:a:task/c/i",
            "arn:aws:ecs:r:a:service/c/s",
        ] {
            assert!(TaskId::parse_arn(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn task_definition_ids_round_trip_with_padded_keys() {
        let arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:12";
        let d = TaskDefinitionId::parse_arn(arn).unwrap();
        assert_eq!(
            d.key(),
            "/123456789012/eu-west-1/ecs/taskdef/web/0000000012"
        );
        assert_eq!(d.arn(), arn);
        for bad in [
            "arn:aws:ecs:r:a:task-definition/web",
            "arn:aws:ecs:r:a:task-definition/web:0",
            "arn:aws:ecs:r:a:task-definition/web:x",
        ] {
            assert!(TaskDefinitionId::parse_arn(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn statuses_are_ordered_and_read_from_records() {
        assert!(LastStatus::Provisioning < LastStatus::Running);
        assert!(LastStatus::Running < LastStatus::Stopped);
        let t = json!({"lastStatus": "DEACTIVATING", "desiredStatus": "STOPPED"});
        assert_eq!(LastStatus::of(&t), Some(LastStatus::Deactivating));
        assert_eq!(DesiredStatus::of(&t), Some(DesiredStatus::Stopped));
        assert_eq!(LastStatus::of(&json!({"lastStatus": "NAPPING"})), None);
        assert!(is_stopped(&json!({"lastStatus": "STOPPED"})));
        assert_eq!(
            serde_json::to_value(LastStatus::Deprovisioning).unwrap(),
            "DEPROVISIONING"
        );
    }

    #[test]
    fn the_private_section_keeps_what_it_does_not_know() {
        let mut t = json!({"_berth": {"ip": "10.0.0.5", "portsMapped": true, "targets": [1], "drain": {"reason": "r"},
            "subnets": [{"subnetId": "subnet-1", "cidrBlock": "172.31.0.0/20", "availabilityZone": "us-east-1a"}]}});
        let mut p = TaskPrivate::of(&t);
        assert_eq!(p.ip.as_deref(), Some("10.0.0.5"));
        assert!(p.ports_mapped);
        assert_eq!(p.subnets[0].cidr_block, "172.31.0.0/20");
        p.endpoint_token = Some("tok".into());
        p.store_in(&mut t);
        assert_eq!(
            t["_berth"],
            json!({"ip": "10.0.0.5", "portsMapped": true, "targets": [1], "drain": {"reason": "r"}, "endpointToken": "tok",
                "subnets": [{"subnetId": "subnet-1", "cidrBlock": "172.31.0.0/20", "availabilityZone": "us-east-1a"}]})
        );
        assert_eq!(TaskPrivate::of(&json!({})), TaskPrivate::default());
        assert_eq!(
            TaskPrivate::str_in(&t, PrivateId::EndpointToken),
            Some("tok")
        );
        assert_eq!(TaskPrivate::str_in(&t, PrivateId::CredentialsId), None);
    }
}
