//! Request members Berth cannot act on yet. A request that sets one is refused, naming
//! the member, before anything is recorded: storing it and answering 200 would promise
//! what Berth does not do. Each leaves this file when the feature it needs exists.

use crate::common::*;
use berth_wire::{ApiError, ApiResult};
use serde_json::Value;

/// A valid request that needs a part of Berth that does not exist yet.
pub(crate) fn not_supported(op: &str, member: &str, why: &str) -> ApiError {
    ApiError::new(
        501,
        "NotImplemented",
        format!("{op}: {member} is not supported by Berth yet ({why}); nothing was changed."),
    )
}

fn non_empty(input: &Value, member: &str) -> bool {
    input
        .get(member)
        .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
}

fn is_true(input: &Value, pointer: &str) -> bool {
    input.pointer(pointer) == Some(&Value::Bool(true))
}

/// RunTask's and StartTask's members that need what Berth lacks.
pub(crate) fn check_run(op: &str, input: &Value) -> ApiResult<()> {
    if is_true(input, "/enableExecuteCommand") {
        return Err(not_supported(
            op,
            "enableExecuteCommand",
            "ECS Exec (ExecuteCommand) is not implemented",
        ));
    }
    if non_empty(input, "volumeConfigurations") {
        return Err(not_supported(
            op,
            "volumeConfigurations",
            "Amazon EBS volumes configured at launch are not implemented",
        ));
    }
    if arr_of(&input["overrides"], "containerOverrides")
        .iter()
        .any(|c| non_empty(c, "resourceRequirements"))
    {
        return Err(not_supported(
            op,
            "overrides.containerOverrides.resourceRequirements",
            "GPUs and inference accelerators are not implemented",
        ));
    }
    if input
        .get("overrides")
        .is_some_and(|o| non_empty(o, "inferenceAcceleratorOverrides"))
    {
        return Err(not_supported(
            op,
            "overrides.inferenceAcceleratorOverrides",
            "inference accelerators are not implemented",
        ));
    }
    Ok(())
}

/// CreateService's and UpdateService's members that need what Berth lacks.
pub(crate) fn check_service(op: &str, input: &Value) -> ApiResult<()> {
    if input.get("availabilityZoneRebalancing") == Some(&Value::from("ENABLED")) {
        return Err(not_supported(
            op,
            "availabilityZoneRebalancing ENABLED",
            "tasks are not rebalanced across Availability Zones",
        ));
    }
    for (member, why) in [
        (
            "serviceRegistries",
            "service discovery through AWS Cloud Map is not implemented",
        ),
        (
            "volumeConfigurations",
            "Amazon EBS volumes configured at launch are not implemented",
        ),
        ("vpcLatticeConfigurations", "VPC Lattice is not implemented"),
        ("gatewayConnectors", "gateways are not implemented"),
        (
            "monitoring",
            "service metrics (CloudWatch) are not implemented",
        ),
    ] {
        if non_empty(input, member) {
            return Err(not_supported(op, member, why));
        }
    }
    if arr_of(input, "loadBalancers")
        .iter()
        .any(|lb| non_empty(lb, "advancedConfiguration"))
    {
        return Err(not_supported(
            op,
            "loadBalancers.advancedConfiguration",
            "blue/green deployments are not implemented",
        ));
    }
    if is_true(input, "/serviceConnectConfiguration/enabled") {
        return Err(not_supported(
            op,
            "serviceConnectConfiguration",
            "Service Connect is not implemented",
        ));
    }
    if is_true(input, "/enableExecuteCommand") {
        return Err(not_supported(
            op,
            "enableExecuteCommand",
            "ECS Exec (ExecuteCommand) is not implemented",
        ));
    }
    if let Some(dc) = input.get("deploymentConfiguration") {
        check_deployment(op, dc)?;
    }
    Ok(())
}

/// Rolling deployments with the circuit breaker are what Berth does; the other strategies,
/// CloudWatch alarms and lifecycle hooks are refused rather than run as a rolling one.
fn check_deployment(op: &str, dc: &Value) -> ApiResult<()> {
    if let Some(s) = str_of(dc, "strategy").filter(|s| *s != "ROLLING") {
        return Err(not_supported(
            op,
            &format!("deploymentConfiguration.strategy {s}"),
            "only ROLLING deployments are implemented",
        ));
    }
    if is_true(dc, "/alarms/enable") {
        return Err(not_supported(
            op,
            "deploymentConfiguration.alarms",
            "CloudWatch alarms are not implemented",
        ));
    }
    for (member, why) in [
        (
            "lifecycleHooks",
            "deployment lifecycle hooks are not implemented",
        ),
        (
            "linearConfiguration",
            "only ROLLING deployments are implemented",
        ),
        (
            "canaryConfiguration",
            "only ROLLING deployments are implemented",
        ),
        (
            "earlySuccessCriteria",
            "only ROLLING deployments are implemented",
        ),
    ] {
        if non_empty(dc, member) {
            return Err(not_supported(
                op,
                &format!("deploymentConfiguration.{member}"),
                why,
            ));
        }
    }
    if dc
        .get("bakeTimeInMinutes")
        .and_then(Value::as_i64)
        .is_some_and(|m| m != 0)
    {
        return Err(not_supported(
            op,
            "deploymentConfiguration.bakeTimeInMinutes",
            "bake time belongs to blue/green deployments, which are not implemented",
        ));
    }
    Ok(())
}

/// The Fargate platform Berth runs, and what a request may name for it.
pub(crate) const PLATFORM: &str = "1.4.0";

/// The platform version a request asks for: LATEST and 1.4.0 are Berth's platform; older
/// Fargate platforms are refused, anything else does not exist; EC2 takes none.
pub(crate) fn platform_version(
    op: &str,
    input: &Value,
    fargate: bool,
) -> ApiResult<Option<String>> {
    let Some(v) = str_of(input, "platformVersion") else {
        return Ok(None);
    };
    if !fargate {
        return Err(invalid(
            "The platform version must be null when specifying an EC2 launch type.",
        ));
    }
    match v {
        "LATEST" | PLATFORM => Ok(Some(v.to_string())),
        "1.0.0" | "1.1.0" | "1.2.0" | "1.3.0" => Err(not_supported(
            op,
            &format!("platformVersion {v}"),
            "Berth runs Fargate platform version 1.4.0 (LATEST) only",
        )),
        _ => Err(ApiError::client(
            "PlatformUnknownException",
            format!("The specified platform version ({v}) does not exist."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_pass_and_settings_berth_cannot_do_are_named() {
        // What IaC tools send with their defaults must pass.
        let defaults = json!({"serviceRegistries": [], "enableExecuteCommand": false,
            "availabilityZoneRebalancing": "DISABLED", "volumeConfigurations": [],
            "serviceConnectConfiguration": {"enabled": false},
            "deploymentConfiguration": {"strategy": "ROLLING", "alarms": {"enable": false, "rollback": false, "alarmNames": []}, "bakeTimeInMinutes": 0}});
        check_service("CreateService", &defaults).unwrap();
        check_run("RunTask", &json!({"enableExecuteCommand": false})).unwrap();
        for (input, named) in [
            (
                json!({"serviceRegistries": [{"registryArn": "a"}]}),
                "serviceRegistries",
            ),
            (
                json!({"deploymentConfiguration": {"strategy": "BLUE_GREEN"}}),
                "strategy BLUE_GREEN",
            ),
            (
                json!({"deploymentConfiguration": {"alarms": {"enable": true, "rollback": true, "alarmNames": ["a"]}}}),
                "alarms",
            ),
            (
                json!({"deploymentConfiguration": {"bakeTimeInMinutes": 5}}),
                "bakeTimeInMinutes",
            ),
            (
                json!({"serviceConnectConfiguration": {"enabled": true}}),
                "serviceConnectConfiguration",
            ),
            (
                json!({"availabilityZoneRebalancing": "ENABLED"}),
                "availabilityZoneRebalancing",
            ),
        ] {
            let e = check_service("UpdateService", &input).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (501, "NotImplemented"));
            assert!(e.message.contains(named), "{}", e.message);
        }
        let e = check_run("RunTask", &json!({"enableExecuteCommand": true})).unwrap_err();
        assert!(e.message.contains("enableExecuteCommand"));
    }

    #[test]
    fn platform_versions() {
        let pv =
            |v: &str, fargate| platform_version("RunTask", &json!({"platformVersion": v}), fargate);
        assert_eq!(pv("LATEST", true).unwrap().as_deref(), Some("LATEST"));
        assert_eq!(pv("1.4.0", true).unwrap().as_deref(), Some("1.4.0"));
        assert_eq!(pv("1.3.0", true).unwrap_err().code, "NotImplemented");
        assert_eq!(
            pv("9.9", true).unwrap_err().code,
            "PlatformUnknownException"
        );
        assert_eq!(pv("LATEST", false).unwrap_err().code, INVALID);
        assert!(platform_version("RunTask", &json!({}), true)
            .unwrap()
            .is_none());
    }
}
