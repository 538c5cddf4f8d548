//! berth-elbv2: the Elastic Load Balancing v2 API (awsQuery: form in, XML out) for
//! application and network load balancers. Load balancers, target groups and their targets,
//! listeners and rules are records in the store; every write is checked in full first and
//! then made in one transaction. Subnets, VPCs and security groups are checked against
//! Berth's EC2 model (berth-ec2). Nothing here moves traffic: the data plane that gives
//! load balancers addresses, forwards requests and checks targets' health reads these
//! records (targets carry a `State`/`Reason`/`Description` a health checker updates).

pub mod api;
mod common;
mod lb;
mod listener;
mod rule;
mod tags;
mod tg;

use berth_store::Store;
use berth_wire::model::LazyModel;
use berth_wire::{ApiError, ApiResult, Clock, Model, RequestContext, Service, ValidationCodes};
use common::Scope;
use serde_json::Value;
use std::sync::Arc;

static MODEL: LazyModel = LazyModel::new(include_bytes!("../../berth-wire/models/elbv2.json.gz"));

pub fn model() -> &'static Model {
    MODEL.get()
}

pub struct Elbv2 {
    store: Arc<dyn Store>,
    clock: Clock,
    publish: Option<std::net::Ipv4Addr>,
}

impl Elbv2 {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Elbv2 {
            store,
            clock,
            publish: None,
        }
    }

    /// Listeners are also bound on `addr` (`--publish-lb`): each listener's port is then
    /// leased on the host (beside tasks' host ports), and a port in use is refused.
    pub fn publishing(mut self, addr: Option<std::net::Ipv4Addr>) -> Self {
        self.publish = addr;
        self
    }
}

impl Service for Elbv2 {
    fn model(&self) -> &'static Model {
        model()
    }
    fn metadata(&self) -> &'static berth_wire::model::Metadata {
        MODEL.metadata()
    }
    fn codes(&self) -> ValidationCodes {
        ValidationCodes {
            constraint: "ValidationError",
            serialization: "ValidationError",
            missing: None,
            unknown_parameter: None,
        }
    }
    fn call(&self, ctx: &RequestContext, operation: &str, input: Value) -> ApiResult<Value> {
        let handler: fn(&Scope, &Value) -> ApiResult<Value> = match operation {
            "CreateLoadBalancer" => lb::create,
            "DescribeLoadBalancers" => lb::describe,
            "DeleteLoadBalancer" => lb::delete,
            "DescribeLoadBalancerAttributes" => lb::describe_attributes,
            "ModifyLoadBalancerAttributes" => lb::modify_attributes,
            "SetSecurityGroups" => lb::set_security_groups,
            "SetSubnets" => lb::set_subnets,
            "CreateTargetGroup" => tg::create,
            "DescribeTargetGroups" => tg::describe,
            "ModifyTargetGroup" => tg::modify,
            "DeleteTargetGroup" => tg::delete,
            "DescribeTargetGroupAttributes" => tg::describe_attributes,
            "ModifyTargetGroupAttributes" => tg::modify_attributes,
            "RegisterTargets" => tg::register,
            "DeregisterTargets" => tg::deregister,
            "DescribeTargetHealth" => tg::describe_health,
            "CreateListener" => listener::create,
            "DescribeListeners" => listener::describe,
            "ModifyListener" => listener::modify,
            "DeleteListener" => listener::delete,
            "CreateRule" => rule::create,
            "DescribeRules" => rule::describe,
            "ModifyRule" => rule::modify,
            "DeleteRule" => rule::delete,
            "SetRulePriorities" => rule::set_priorities,
            "AddTags" => tags::add,
            "RemoveTags" => tags::remove,
            "DescribeTags" => tags::describe,
            _ => return Err(ApiError::not_implemented("elasticloadbalancing", operation)),
        };
        let mut scope = Scope::new(
            self.store.as_ref(),
            &ctx.account,
            &ctx.region,
            self.clock.now(),
        );
        scope.publish = self.publish;
        handler(&scope, &input)
    }
}

#[cfg(test)]
mod tests;
