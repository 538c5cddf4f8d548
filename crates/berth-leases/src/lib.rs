//! berth-leases: what a task or load balancer holds on this host, as store records, so
//! two owners never share one: addresses (`ipam`: one allocator for the host) and host
//! ports (`ports`). Each lease names its owner's ARN; the host plumbing that uses them
//! is berth-net's, which knows nothing of the store.

pub mod ipam;
pub mod ports;

/// The store key of the task a lease owner names (`arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID`,
/// the owner of task leases).
/// ECS's codec in berth-model does the work: this crate knows no ECS key layout.
pub fn owner_task_key(arn: &str) -> Option<String> {
    berth_model::ecs::TaskId::parse_arn(arn).map(|t| t.key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_task_key_reads_task_arns_only() {
        assert_eq!(
            owner_task_key("arn:aws:ecs:us-east-1:000000000000:task/default/abc").as_deref(),
            Some("/000000000000/us-east-1/ecs/task/default/abc")
        );
        assert_eq!(
            owner_task_key(
                "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/a/1"
            ),
            None
        );
    }
}
