//! berth-leases: what a task or load balancer holds on this host, as store records, so
//! two owners never share one: addresses (`ipam`: one allocator for the host) and host
//! ports (`ports`). Each lease names its owner's ARN; the host plumbing that uses them
//! is berth-net's, which knows nothing of the store.

pub mod ipam;
pub mod ports;

/// The store key of the task a lease owner names (`arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID`,
/// the owner of task leases).
pub fn owner_task_key(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let (region, account, res) = (parts.get(3)?, parts.get(4)?, parts.get(5)?);
    let mut r = res.splitn(3, '/');
    let (kind, cluster, id) = (r.next()?, r.next()?, r.next()?);
    (kind == "task").then(|| format!("/{account}/{region}/ecs/task/{cluster}/{id}"))
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
