//! Shared vocabulary of the Logs module: store keys, ARNs, name rules, errors.

use crate::segments::StreamRef;
use berth_store::StoreError;
use berth_wire::{ApiError, ApiResult, Clock, RequestContext};
use std::collections::BTreeMap;

pub const INVALID: &str = "InvalidParameterException";
pub const GROUP_PATTERN: &str = "[\\.\\-_/#A-Za-z0-9]+";
pub const STREAM_PATTERN: &str = "[^:*]*";

pub fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::client(INVALID, msg)
}

pub fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError::client("ResourceNotFoundException", msg)
}

pub fn group_not_found() -> ApiError {
    not_found("The specified log group does not exist.")
}

pub fn stream_not_found() -> ApiError {
    not_found("The specified log stream does not exist.")
}

pub fn bad_token() -> ApiError {
    invalid("The specified nextToken is invalid.")
}

/// Failures of the record store or the disk are the server's, never the caller's.
pub fn store_err(e: StoreError) -> ApiError {
    ApiError::new(500, "ServiceUnavailableException", e.to_string())
}

pub fn io_err(e: std::io::Error) -> ApiError {
    ApiError::new(
        500,
        "ServiceUnavailableException",
        format!("log event storage failed: {e}"),
    )
}

pub fn now_ms(clock: &Clock) -> i64 {
    (clock.now() * 1000.0).round() as i64
}

pub fn group_key(account: &str, region: &str, name: &str) -> String {
    format!("/{account}/{region}/logs/group/{name}")
}

pub fn group_prefix(account: &str, region: &str) -> String {
    format!("/{account}/{region}/logs/group/")
}

/// Streams of a group: `/{account}/{region}/logs/stream/{group}:{stream}`. The colon (never
/// in a group name) ends the group, so a group's streams are exactly one key prefix and
/// group `a` stream `b/c` cannot meet group `a/b` stream `c`.
pub fn stream_prefix(account: &str, region: &str, group: &str) -> String {
    format!("/{account}/{region}/logs/stream/{group}:")
}

pub fn stream_key(account: &str, region: &str, group: &str, stream: &str) -> String {
    format!("/{account}/{region}/logs/stream/{group}:{stream}")
}

/// `arn:aws:logs:REGION:ACCOUNT:log-group:NAME` (the `arn` member adds `:*`).
pub fn group_arn(ctx: &RequestContext, name: &str) -> String {
    format!(
        "arn:aws:logs:{}:{}:log-group:{name}",
        ctx.region, ctx.account
    )
}

pub fn stream_arn(ctx: &RequestContext, group: &str, stream: &str) -> String {
    format!(
        "arn:aws:logs:{}:{}:log-group:{group}:log-stream:{stream}",
        ctx.region, ctx.account
    )
}

pub fn sref<'a>(ctx: &'a RequestContext, group: &'a str, stream: &'a str) -> StreamRef<'a> {
    StreamRef {
        account: &ctx.account,
        region: &ctx.region,
        group,
        stream,
    }
}

fn pattern_error(value: &str, field: &str, pattern: &str) -> ApiError {
    invalid(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"
    ))
}

/// Log group names: 1 to 512 of `a-z A-Z 0-9 _ - / . #` (the length is the model's).
pub fn check_group_name(name: &str, field: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(pattern_error(name, field, GROUP_PATTERN))
    }
}

/// Log stream names: 1 to 512 characters, no `:` or `*`.
pub fn check_stream_name(name: &str, field: &str) -> ApiResult<()> {
    if name.contains([':', '*']) {
        return Err(pattern_error(name, field, STREAM_PATTERN));
    }
    if name.is_empty() || name.chars().count() > 512 {
        return Err(invalid(format!(
            "1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: Member must have length between 1 and 512"
        )));
    }
    Ok(())
}

/// The group a request names: `logGroupName`, or `logGroupIdentifier` (a name or a log
/// group ARN of this account and region, with or without the trailing `:*`), not both.
pub fn group_from(
    ctx: &RequestContext,
    name: Option<&str>,
    identifier: Option<&str>,
) -> ApiResult<String> {
    match (name, identifier) {
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (None, None) => Err(invalid(
            "Should provide either name or ARN of the log group (logGroupName or logGroupIdentifier).",
        )),
        (Some(name), None) => {
            check_group_name(name, "logGroupName")?;
            Ok(name.to_string())
        }
        (None, Some(id)) => group_from_identifier(ctx, id),
    }
}

pub fn group_from_identifier(ctx: &RequestContext, id: &str) -> ApiResult<String> {
    if !id.starts_with("arn:") {
        check_group_name(id, "logGroupIdentifier")?;
        return Ok(id.to_string());
    }
    let name = group_name_from_arn(ctx, id).ok_or_else(group_not_found)?;
    check_group_name(&name, "logGroupIdentifier")?;
    Ok(name)
}

/// The group name in `arn:PARTITION:logs:REGION:ACCOUNT:log-group:NAME[:*]`, if the ARN is
/// a log group ARN of this account and region.
pub fn group_name_from_arn(ctx: &RequestContext, arn: &str) -> Option<String> {
    let mut it = arn.splitn(7, ':');
    if it.next()? != "arn" {
        return None;
    }
    let _partition = it.next()?;
    if it.next()? != "logs" {
        return None;
    }
    let region = it.next()?;
    let account = it.next()?;
    if it.next()? != "log-group" {
        return None;
    }
    let rest = it.next()?;
    if region != ctx.region || account != ctx.account {
        return None;
    }
    let name = rest.strip_suffix(":*").unwrap_or(rest);
    if name.is_empty() || name.contains(':') {
        return None;
    }
    Some(name.to_string())
}

/// Tags as CloudWatch Logs takes them: a map; at most 50; keys and values of letters,
/// digits, separators and `_ . : / = + - @`; the `aws:` prefix is reserved.
pub fn check_tags(tags: &BTreeMap<String, String>) -> ApiResult<()> {
    fn allowed(c: char) -> bool {
        c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || !k.chars().all(allowed) {
            return Err(invalid(format!(
                "1 validation error detected: Value '{k}' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: ^([\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]+)$]"
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(format!(
                "Tag keys beginning with 'aws:' are reserved for system use: {k}"
            )));
        }
        if v.chars().count() > 256 || !v.chars().all(allowed) {
            return Err(invalid(format!(
                "1 validation error detected: Value '{v}' at 'tags' failed to satisfy constraint: Map values must satisfy constraint: [Member must have length less than or equal to 256, Member must satisfy regular expression pattern: ^([\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*)$]"
            )));
        }
    }
    Ok(())
}

/// Page tokens for DescribeLogGroups and DescribeLogStreams: the key to resume after.
pub fn decode_next(token: Option<&str>) -> ApiResult<Option<String>> {
    match token {
        None => Ok(None),
        Some(t) => berth_wire::page::decode_token(t)
            .map(Some)
            .ok_or_else(bad_token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn names_follow_the_model_patterns() {
        assert!(check_group_name("/ecs/web-app_1.#x", "logGroupName").is_ok());
        assert!(check_group_name("bad name", "logGroupName").is_err());
        assert!(check_group_name("a:b", "logGroupName").is_err());
        assert!(check_group_name(&"a".repeat(513), "logGroupName").is_err());
        assert!(check_stream_name("ecs/web/abc 1 ü", "logStreamName").is_ok());
        assert!(check_stream_name("a:b", "logStreamName").is_err());
        assert!(check_stream_name("a*", "logStreamName").is_err());
    }

    #[test]
    fn group_arns_parse_only_for_this_account_and_region() {
        let c = ctx();
        let arn = format!("{}:*", group_arn(&c, "/ecs/web"));
        assert_eq!(
            arn,
            "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/web:*"
        );
        assert_eq!(group_name_from_arn(&c, &arn).as_deref(), Some("/ecs/web"));
        assert_eq!(
            group_name_from_arn(&c, "arn:aws:logs:eu-west-1:123456789012:log-group:g").as_deref(),
            Some("g")
        );
        assert!(
            group_name_from_arn(&c, "arn:aws:logs:us-east-1:123456789012:log-group:g").is_none()
        );
        assert!(
            group_name_from_arn(&c, "arn:aws:logs:eu-west-1:123456789012:destination:d").is_none()
        );
        assert!(group_name_from_arn(
            &c,
            "arn:aws:logs:eu-west-1:123456789012:log-group:g:log-stream:s"
        )
        .is_none());
    }

    #[test]
    fn tags_rules() {
        let tags = |t: &[(&str, &str)]| -> BTreeMap<String, String> {
            t.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_tags(&tags(&[("env", "prod"), ("team name", "a/b@c")])).is_ok());
        assert!(check_tags(&tags(&[("aws:x", "1")])).is_err());
        assert!(check_tags(&tags(&[("a!", "1")])).is_err());
    }
}
