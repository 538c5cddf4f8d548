//! berth-elbv2: the Elastic Load Balancing v2 API (awsQuery: form in, XML out) for
//! application and network load balancers. Load balancers, target groups and their targets,
//! listeners and rules are records in the store; every write is checked in full first and
//! then made in one transaction. Subnets, VPCs and security groups are checked against
//! Berth's EC2 model (berth-ec2). Nothing here moves traffic: the data plane that gives
//! load balancers addresses, forwards requests and checks targets' health reads these
//! records (targets carry a `State`/`Reason`/`Description` a health checker updates).

pub mod api;
mod common;
/// `compile_fail.rs` (tests/compile_fail/elbv2_types.sh) shows a handler cannot read a
/// member the model lacks nor miss a required one.
#[cfg(feature = "compile-fail-typed")]
mod compile_fail;
mod lb;
mod listener;
mod rule;
mod tags;
mod tg;

use berth_store::Store;
use berth_types::elbv2::op;
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
            // A form parameter the model lacks is refused before any handler runs, as
            // EC2 refuses it (the typed inputs refuse such members too).
            unknown_parameter: Some("ValidationError"),
        }
    }
    fn call(&self, ctx: &RequestContext, operation: &str, input: Value) -> ApiResult<Value> {
        let mut scope = Scope::new(
            self.store.as_ref(),
            &ctx.account,
            &ctx.region,
            self.clock.now(),
        );
        scope.publish = self.publish;
        let s = &scope;
        berth_wire::dispatch!(operation, input, self.codes(), op {
            CreateLoadBalancer => |i| lb::create(s, i),
            DescribeLoadBalancers => |i| lb::describe(s, i),
            DeleteLoadBalancer => |i| lb::delete(s, i),
            DescribeLoadBalancerAttributes => |i| lb::describe_attributes(s, i),
            ModifyLoadBalancerAttributes => |i| lb::modify_attributes(s, i),
            SetSecurityGroups => |i| lb::set_security_groups(s, i),
            SetSubnets => |i| lb::set_subnets(s, i),
            CreateTargetGroup => |i| tg::create(s, i),
            DescribeTargetGroups => |i| tg::describe(s, i),
            ModifyTargetGroup => |i| tg::modify(s, i),
            DeleteTargetGroup => |i| tg::delete(s, i),
            DescribeTargetGroupAttributes => |i| tg::describe_attributes(s, i),
            ModifyTargetGroupAttributes => |i| tg::modify_attributes(s, i),
            RegisterTargets => |i| tg::register(s, i),
            DeregisterTargets => |i| tg::deregister(s, i),
            DescribeTargetHealth => |i| tg::describe_health(s, i),
            CreateListener => |i| listener::create(s, i),
            DescribeListeners => |i| listener::describe(s, i),
            ModifyListener => |i| listener::modify(s, i),
            DeleteListener => |i| listener::delete(s, i),
            CreateRule => |i| rule::create(s, i),
            DescribeRules => |i| rule::describe(s, i),
            ModifyRule => |i| rule::modify(s, i),
            DeleteRule => |i| rule::delete(s, i),
            SetRulePriorities => |i| rule::set_priorities(s, i),
            AddTags => |i| tags::add(s, i),
            RemoveTags => |i| tags::remove(s, i),
            DescribeTags => |i| tags::describe(s, i),
        } else Err(ApiError::not_implemented("elasticloadbalancing", operation)))
    }
}

#[cfg(test)]
mod tests;
