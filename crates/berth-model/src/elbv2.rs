//! ELBv2's records (load balancers, target groups, targets, listeners, rules), typed as
//! the API stores them, with their store keys (`key`) and ARNs (`arn`). The stored JSON is
//! the same as before these types existed; fields a record has and a type does not name
//! are kept in `extra`, so a newer record survives an older reader's rewrite.

pub mod arn;
pub mod key;
pub mod rule;

pub use rule::{Action, Condition};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Fields a type does not know, kept as they are.
pub type Extra = serde_json::Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Attribute values are strings as the API takes them.
pub type Attributes = BTreeMap<String, Value>;

fn attr<'a>(attrs: &'a Attributes, k: &str) -> Option<&'a str> {
    attrs.get(k).and_then(Value::as_str)
}

// ---- load balancers (`lb/{name}`) -----------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbType {
    Application,
    Network,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbAddress {
    #[serde(rename = "IpAddress", default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(
        rename = "PrivateIPv4Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ipv4_address: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvailabilityZone {
    #[serde(rename = "ZoneName", default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
    #[serde(rename = "SubnetId", default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(
        rename = "LoadBalancerAddresses",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub addresses: Option<Vec<LbAddress>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The model's `LoadBalancer` shape as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    #[serde(rename = "LoadBalancerArn")]
    pub arn: String,
    #[serde(rename = "LoadBalancerName")]
    pub name: String,
    #[serde(rename = "DNSName")]
    pub dns_name: String,
    #[serde(rename = "Type")]
    pub lb_type: LbType,
    #[serde(rename = "VpcId", default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(rename = "Scheme", default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(rename = "AvailabilityZones", default)]
    pub availability_zones: Vec<AvailabilityZone>,
    #[serde(
        rename = "SecurityGroups",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub security_groups: Option<Vec<String>>,
    /// CanonicalHostedZoneId, CreatedTime, State, IpAddressType, ...
    #[serde(flatten)]
    pub extra: Extra,
}

impl LoadBalancer {
    /// Its IPv4 addresses, one per zone.
    pub fn addresses(&self) -> Vec<std::net::Ipv4Addr> {
        self.availability_zones
            .iter()
            .flat_map(|z| z.addresses.iter().flatten())
            .filter_map(|a| a.ip_address.as_deref()?.parse().ok())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbRecord {
    #[serde(rename = "LoadBalancer")]
    pub load_balancer: LoadBalancer,
    #[serde(rename = "Tags", default)]
    pub tags: Vec<Tag>,
    #[serde(rename = "Attributes", default)]
    pub attributes: Attributes,
    #[serde(flatten)]
    pub extra: Extra,
}

impl LbRecord {
    pub fn attr(&self, k: &str) -> Option<&str> {
        attr(&self.attributes, k)
    }
}

// ---- target groups (`tg/{name}`) and targets (`targets/{tg id}`) ------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    #[serde(rename = "HttpCode", default, skip_serializing_if = "Option::is_none")]
    pub http_code: Option<String>,
    #[serde(rename = "GrpcCode", default, skip_serializing_if = "Option::is_none")]
    pub grpc_code: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The model's `TargetGroup` shape as stored (without `LoadBalancerArns`, which is
/// rendered from the record's `UsedBy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroup {
    #[serde(rename = "TargetGroupArn")]
    pub arn: String,
    #[serde(rename = "TargetGroupName")]
    pub name: String,
    #[serde(rename = "TargetType")]
    pub target_type: String,
    #[serde(rename = "Protocol", default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(rename = "Port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(rename = "VpcId", default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(
        rename = "HealthCheckProtocol",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_protocol: Option<String>,
    /// A port number or `traffic-port`.
    #[serde(
        rename = "HealthCheckPort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_port: Option<String>,
    #[serde(
        rename = "HealthCheckPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_path: Option<String>,
    #[serde(
        rename = "HealthCheckIntervalSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_interval_seconds: Option<u64>,
    #[serde(
        rename = "HealthCheckTimeoutSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_timeout_seconds: Option<u64>,
    #[serde(
        rename = "HealthyThresholdCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthy_threshold_count: Option<u32>,
    #[serde(
        rename = "UnhealthyThresholdCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unhealthy_threshold_count: Option<u32>,
    #[serde(rename = "Matcher", default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Matcher>,
    /// IpAddressType, ProtocolVersion, HealthCheckEnabled, ...
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TgRecord {
    #[serde(rename = "TargetGroup")]
    pub target_group: TargetGroup,
    #[serde(rename = "Tags", default)]
    pub tags: Vec<Tag>,
    #[serde(rename = "Attributes", default)]
    pub attributes: Attributes,
    /// Listener or rule ARN -> the load balancer ARN it belongs to.
    #[serde(rename = "UsedBy", default)]
    pub used_by: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl TgRecord {
    pub fn attr(&self, k: &str) -> Option<&str> {
        attr(&self.attributes, k)
    }
    pub fn in_use(&self) -> bool {
        !self.used_by.is_empty()
    }
}

/// A target's health state as the API and the health checks record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetHealthState {
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
}

impl TargetHealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealthState::Initial => "initial",
            TargetHealthState::Healthy => "healthy",
            TargetHealthState::Unhealthy => "unhealthy",
            TargetHealthState::Unused => "unused",
            TargetHealthState::Draining => "draining",
            TargetHealthState::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Port")]
    pub port: i64,
    #[serde(
        rename = "AvailabilityZone",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_zone: Option<String>,
    #[serde(rename = "State")]
    pub state: TargetHealthState,
    #[serde(rename = "Reason", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(
        rename = "Description",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// When deregistration began (seconds since the epoch); set while draining.
    #[serde(
        rename = "DrainingSince",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub draining_since: Option<f64>,
    /// Kept as stored (an integer or not), so a rewrite leaves it unchanged.
    #[serde(
        rename = "DrainSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub drain_seconds: Option<serde_json::Number>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Target {
    /// When a draining target's deregistration delay ends (300 s when unrecorded).
    pub fn drain_deadline(&self) -> Option<f64> {
        let secs = self.drain_seconds.as_ref().and_then(|n| n.as_f64());
        self.draining_since.map(|s| s + secs.unwrap_or(300.0))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetsRecord {
    #[serde(rename = "TargetGroupArn")]
    pub target_group_arn: String,
    #[serde(rename = "Targets", default)]
    pub targets: Vec<Target>,
    #[serde(flatten)]
    pub extra: Extra,
}

// ---- listeners (`listener/{lb id}/{id}`) and rules (`rule/{listener id}/{id}`) -----------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    #[serde(rename = "ListenerArn")]
    pub arn: String,
    #[serde(rename = "LoadBalancerArn")]
    pub load_balancer_arn: String,
    #[serde(rename = "Port")]
    pub port: i64,
    #[serde(rename = "Protocol")]
    pub protocol: String,
    #[serde(rename = "DefaultActions")]
    pub default_actions: Vec<Action>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerRecord {
    #[serde(rename = "Listener")]
    pub listener: Listener,
    #[serde(rename = "Tags", default)]
    pub tags: Vec<Tag>,
    /// The id of the listener's default rule (its ARN's last part).
    #[serde(rename = "DefaultRuleId")]
    pub default_rule_id: String,
    #[serde(rename = "DefaultRuleTags", default)]
    pub default_rule_tags: Vec<Tag>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(rename = "RuleArn")]
    pub arn: String,
    /// A number, or `default` for a listener's default rule.
    #[serde(rename = "Priority")]
    pub priority: String,
    #[serde(rename = "Conditions")]
    pub conditions: Vec<Condition>,
    #[serde(rename = "Actions")]
    pub actions: Vec<Action>,
    #[serde(rename = "IsDefault")]
    pub is_default: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Rule {
    /// Numeric priorities in order, `default` (or anything else) last.
    pub fn order_key(&self) -> u32 {
        self.priority.parse().unwrap_or(u32::MAX)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleRecord {
    #[serde(rename = "Rule")]
    pub rule: Rule,
    #[serde(rename = "Tags", default)]
    pub tags: Vec<Tag>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A stored record read as its type.
pub fn from_value<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(v)
}

/// A typed record (or part of one) as the JSON the store keeps.
pub fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("ELBv2 records serialize to JSON")
}

#[cfg(test)]
mod tests;
