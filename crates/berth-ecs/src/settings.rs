//! Account settings: PutAccountSetting, PutAccountSettingDefault, ListAccountSettings,
//! DeleteAccountSetting. A setting applies to a principal (an IAM ARN) or, as the
//! account default, to every principal without its own.

use crate::common::*;
use crate::Ecs;
use berth_store::Op;
use berth_wire::page::paginate;
use berth_wire::{ApiResult, RequestContext};
use serde_json::{json, Value};

/// Each setting ECS knows, with the values it accepts and AWS's default.
const SETTINGS: &[(&str, &[&str], &str)] = &[
    ("serviceLongArnFormat", &["enabled", "disabled"], "enabled"),
    ("taskLongArnFormat", &["enabled", "disabled"], "enabled"),
    (
        "containerInstanceLongArnFormat",
        &["enabled", "disabled"],
        "enabled",
    ),
    ("awsvpcTrunking", &["enabled", "disabled"], "disabled"),
    (
        "containerInsights",
        &["enabled", "disabled", "enhanced"],
        "disabled",
    ),
    ("dualStackIPv6", &["enabled", "disabled"], "disabled"),
    ("fargateFIPSMode", &["enabled", "disabled"], "disabled"),
    ("tagResourceAuthorization", &["on", "off"], "on"),
    ("fargateTaskRetirementWaitPeriod", &["0", "7", "14"], "7"),
    ("guardDutyActivate", &["on", "off"], "off"),
    (
        "defaultLogDriverMode",
        &["blocking", "non-blocking"],
        "non-blocking",
    ),
    ("fargateEventWindows", &["enabled", "disabled"], "disabled"),
];

const DEFAULT_PRINCIPAL: &str = "default";

fn setting_key(ctx: &RequestContext, principal: &str, name: &str) -> String {
    key(ctx, &format!("setting/{principal}/{name}"))
}

fn check(name: &str, value: &str) -> ApiResult<()> {
    let Some((_, allowed, _)) = SETTINGS.iter().find(|(n, _, _)| *n == name) else {
        return Err(invalid(format!(
            "The account setting '{name}' is not supported."
        )));
    };
    if !allowed.contains(&value) {
        return Err(invalid(format!(
            "Invalid value '{value}' for account setting '{name}'. Valid values: {}.",
            allowed.join(", ")
        )));
    }
    Ok(())
}

impl Ecs {
    pub(crate) fn put_account_setting(
        &self,
        ctx: &RequestContext,
        input: &Value,
        default: bool,
    ) -> ApiResult<Value> {
        let name = str_of(input, "name").unwrap_or_default();
        let value = str_of(input, "value").unwrap_or_default();
        check(name, value)?;
        let principal = if default {
            DEFAULT_PRINCIPAL.to_string()
        } else {
            str_of(input, "principalArn")
                .map(str::to_string)
                .unwrap_or_else(|| root_arn(ctx))
        };
        if !default
            && principal != root_arn(ctx)
            && !principal.starts_with(&format!("arn:aws:iam::{}:", ctx.account))
        {
            return Err(invalid(
                "principalArn must be an IAM user, role or root ARN of this account.",
            ));
        }
        let shown_principal = if default {
            root_arn(ctx)
        } else {
            principal.clone()
        };
        let setting =
            json!({"name": name, "value": value, "principalArn": shown_principal, "type": "user"});
        self.store
            .put(&setting_key(ctx, &principal, name), setting.clone())
            .map_err(store_err)?;
        Ok(json!({"setting": setting}))
    }

    pub(crate) fn delete_account_setting(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let name = str_of(input, "name").unwrap_or_default();
        let principal = str_of(input, "principalArn")
            .map(str::to_string)
            .unwrap_or_else(|| root_arn(ctx));
        let k = setting_key(ctx, &principal, name);
        let existing = self.store.get(&k).ok_or_else(|| {
            invalid(format!(
                "The account setting '{name}' is not set for the principal."
            ))
        })?;
        self.store
            .txn(&[], vec![Op::Delete(k)])
            .map_err(store_err)?;
        Ok(json!({"setting": *existing.value}))
    }

    pub(crate) fn list_account_settings(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let principal = str_of(input, "principalArn")
            .map(str::to_string)
            .unwrap_or_else(|| root_arn(ctx));
        let effective = input
            .get("effectiveSettings")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let name_filter = str_of(input, "name");
        let value_filter = str_of(input, "value");
        let mut out: Vec<Value> = vec![];
        for (name, _, aws_default) in SETTINGS {
            let own = self
                .store
                .get(&setting_key(ctx, &principal, name))
                .map(|r| (*r.value).clone());
            let setting = match own {
                Some(s) => Some(s),
                None if effective => {
                    let account_default = self
                        .store
                        .get(&setting_key(ctx, DEFAULT_PRINCIPAL, name))
                        .map(|r| (*r.value).clone());
                    Some(account_default.unwrap_or_else(|| {
                        json!({"name": name, "value": aws_default, "principalArn": principal, "type": "aws_managed"})
                    }))
                }
                None => None,
            };
            if let Some(mut s) = setting {
                s["principalArn"] = json!(principal);
                out.push(s);
            }
        }
        out.retain(|s| {
            name_filter.is_none_or(|n| s["name"] == n)
                && value_filter.is_none_or(|v| s["value"] == v)
        });
        let page = paginate(
            out,
            |s| str_of(s, "name").unwrap_or_default().to_string(),
            input,
            10,
            10,
            INVALID,
        )?;
        Ok(json!({"settings": page.items, "nextToken": page.next_token}))
    }
}
