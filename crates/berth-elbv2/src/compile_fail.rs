//! Code that must not compile (feature `compile-fail-typed`; tests/compile_fail/elbv2_types.sh
//! checks each error code): what ELBv2's typed inputs rule out for a handler.

use berth_types::elbv2::{RegisterTargetsInput, TargetDescription};

/// A member the model does not have (E0609): `Targets[].Prot` is not `Port`.
pub fn unknown_member(input: RegisterTargetsInput) {
    let _ = input.targets[0].prot;
}

/// A required member is the value, not an Option a handler could find empty (E0308).
pub fn required_as_option(input: RegisterTargetsInput) {
    let _: Option<String> = input.target_group_arn;
}

/// A required member cannot be left out (E0063): a target without its Id.
pub fn required_left_out() -> TargetDescription {
    TargetDescription {
        port: Some(80),
        availability_zone: None,
        quic_server_id: None,
    }
}
