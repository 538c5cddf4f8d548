//! Code that must not compile (feature `compile-fail-typed`; tests/compile_fail/logs_types.sh
//! checks each error code): what typed inputs rule out. The unit test
//! `types_follow_the_model` builds the same request correctly.

use crate::types::CreateLogGroupRequest;

/// A member the model does not have (E0609).
pub fn unknown_member(input: CreateLogGroupRequest) {
    let _ = input.log_group_nme;
}

/// A required member is the value, not an Option a handler could find empty (E0308).
pub fn required_as_option(input: CreateLogGroupRequest) {
    let _: Option<String> = input.log_group_name;
}

/// A required member cannot be left out (E0063).
pub fn required_left_out() -> CreateLogGroupRequest {
    CreateLogGroupRequest {
        deletion_protection_enabled: None,
        kms_key_id: None,
        log_group_class: None,
        tags: None,
    }
}
