//! Rule conditions and actions as the API stores them (the model's shapes with their
//! `*Config` filled in). One variant per condition field and action type the API accepts:
//! the data plane matches them exhaustively, so a new variant must be handled there.

use super::Extra;
use serde::{Deserialize, Serialize};

/// `{"Values": [...]}`, the config of most conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Values {
    #[serde(rename = "Values")]
    pub values: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Values {
    pub fn new(values: Vec<String>) -> Values {
        Values {
            values,
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpHeaderConfig {
    #[serde(rename = "HttpHeaderName")]
    pub name: String,
    #[serde(rename = "Values")]
    pub values: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    /// None: any key.
    #[serde(rename = "Key", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(rename = "Value")]
    pub value: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryStringConfig {
    #[serde(rename = "Values")]
    pub values: Vec<KeyValue>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A rule condition, by its `Field`. host-header and path-pattern also keep the legacy
/// `Values` AWS reports beside the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Field")]
pub enum Condition {
    #[serde(rename = "host-header")]
    HostHeader {
        #[serde(rename = "Values", default, skip_serializing_if = "Option::is_none")]
        legacy: Option<Vec<String>>,
        #[serde(rename = "HostHeaderConfig")]
        config: Values,
        #[serde(flatten)]
        extra: Extra,
    },
    #[serde(rename = "path-pattern")]
    PathPattern {
        #[serde(rename = "Values", default, skip_serializing_if = "Option::is_none")]
        legacy: Option<Vec<String>>,
        #[serde(rename = "PathPatternConfig")]
        config: Values,
        #[serde(flatten)]
        extra: Extra,
    },
    #[serde(rename = "http-header")]
    HttpHeader {
        #[serde(rename = "HttpHeaderConfig")]
        config: HttpHeaderConfig,
        #[serde(flatten)]
        extra: Extra,
    },
    #[serde(rename = "http-request-method")]
    HttpRequestMethod {
        #[serde(rename = "HttpRequestMethodConfig")]
        config: Values,
        #[serde(flatten)]
        extra: Extra,
    },
    #[serde(rename = "query-string")]
    QueryString {
        #[serde(rename = "QueryStringConfig")]
        config: QueryStringConfig,
        #[serde(flatten)]
        extra: Extra,
    },
    #[serde(rename = "source-ip")]
    SourceIp {
        #[serde(rename = "SourceIpConfig")]
        config: Values,
        #[serde(flatten)]
        extra: Extra,
    },
    /// Only with the feature `compile-fail-extra-condition`: proves the data plane's
    /// matches are exhaustive (tests/compile_fail/elbv2_condition.sh).
    #[cfg(feature = "compile-fail-extra-condition")]
    #[serde(rename = "x-compile-fail")]
    CompileFailExtra {
        #[serde(flatten)]
        extra: Extra,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroupTuple {
    #[serde(rename = "TargetGroupArn")]
    pub arn: String,
    #[serde(rename = "Weight", default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stickiness {
    #[serde(rename = "Enabled")]
    pub enabled: bool,
    #[serde(
        rename = "DurationSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_seconds: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardConfig {
    #[serde(rename = "TargetGroups")]
    pub target_groups: Vec<TargetGroupTuple>,
    #[serde(
        rename = "TargetGroupStickinessConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stickiness: Option<Stickiness>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Each part may hold `#{protocol}`, `#{host}`, `#{port}`, `#{path}`, `#{query}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedirectConfig {
    #[serde(rename = "Protocol", default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(rename = "Port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(rename = "Host", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(rename = "Path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(rename = "Query", default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `HTTP_301` or `HTTP_302`; stored even when null, as the API always wrote it.
    #[serde(rename = "StatusCode", default)]
    pub status_code: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedResponseConfig {
    #[serde(rename = "StatusCode")]
    pub status_code: String,
    #[serde(
        rename = "ContentType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
    #[serde(
        rename = "MessageBody",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub message_body: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A listener's or rule's action, by its `Type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Type")]
pub enum Action {
    #[serde(rename = "forward")]
    Forward {
        /// Set when the action forwards to one group (AWS reports both forms).
        #[serde(
            rename = "TargetGroupArn",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        target_group_arn: Option<String>,
        #[serde(
            rename = "ForwardConfig",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        config: Option<ForwardConfig>,
        #[serde(rename = "Order", default, skip_serializing_if = "Option::is_none")]
        order: Option<i64>,
        #[serde(flatten)]
        extra: Extra,
    },
    #[serde(rename = "redirect")]
    Redirect {
        #[serde(rename = "RedirectConfig")]
        config: RedirectConfig,
        #[serde(rename = "Order", default, skip_serializing_if = "Option::is_none")]
        order: Option<i64>,
        #[serde(flatten)]
        extra: Extra,
    },
    #[serde(rename = "fixed-response")]
    FixedResponse {
        #[serde(rename = "FixedResponseConfig")]
        config: FixedResponseConfig,
        #[serde(rename = "Order", default, skip_serializing_if = "Option::is_none")]
        order: Option<i64>,
        #[serde(flatten)]
        extra: Extra,
    },
}

impl Action {
    pub fn order(&self) -> Option<i64> {
        match self {
            Action::Forward { order, .. }
            | Action::Redirect { order, .. }
            | Action::FixedResponse { order, .. } => *order,
        }
    }

    pub fn set_order(&mut self, o: Option<i64>) {
        match self {
            Action::Forward { order, .. }
            | Action::Redirect { order, .. }
            | Action::FixedResponse { order, .. } => *order = o,
        }
    }

    /// A forward action's groups with their weights (1 when unset); empty for others.
    pub fn forward_groups(&self) -> Vec<(&str, u32)> {
        match self {
            Action::Forward {
                config: Some(c), ..
            } => c
                .target_groups
                .iter()
                .map(|t| (t.arn.as_str(), t.weight.unwrap_or(1)))
                .collect(),
            Action::Forward {
                target_group_arn: Some(a),
                config: None,
                ..
            } => vec![(a.as_str(), 1)],
            Action::Forward { .. } | Action::Redirect { .. } | Action::FixedResponse { .. } => {
                vec![]
            }
        }
    }
}
