//! Repository policies, repository tags and DescribeRegistry.

use crate::{invalid, scope, server_err, str_of, Ecr};
use berth_registry::Scope;
use berth_store::{Cond, Op, Record};
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};
use std::collections::HashSet;

pub(crate) fn policy_key(scope: &Scope, repo: &str) -> String {
    format!("/{}/{}/ecr/policy/{repo}", scope.account, scope.region)
}

/// A policy document must be JSON with a Statement list whose entries have an Effect and
/// a Principal (repository policies are resource policies).
fn check_policy(text: &str) -> ApiResult<()> {
    let bad = || {
        invalid("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'")
    };
    let v: Value = serde_json::from_str(text).map_err(|_| bad())?;
    let statements = match v.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => return Err(bad()),
    };
    for s in &statements {
        if !matches!(
            s.get("Effect").and_then(Value::as_str),
            Some("Allow") | Some("Deny")
        ) || s.get("Principal").is_none()
            || s.get("Action").is_none()
        {
            return Err(bad());
        }
    }
    Ok(())
}

impl Ecr {
    fn write(&self, conds: &[Cond], ops: Vec<Op>) -> ApiResult<()> {
        self.registry
            .store
            .txn(conds, ops)
            .map(|_| ())
            .map_err(server_err)
    }

    pub(crate) fn set_repository_policy(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let repo = str_of(input, "repositoryName").unwrap_or_default();
        self.repo(&scope, repo)?;
        let text = str_of(input, "policyText").unwrap_or_default();
        check_policy(text)?;
        self.write(
            &[],
            vec![Op::Put(
                policy_key(&scope, repo),
                json!({"policyText": text}),
            )],
        )?;
        Ok(json!({"registryId": scope.account, "repositoryName": repo, "policyText": text}))
    }

    pub(crate) fn get_repository_policy(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let repo = str_of(input, "repositoryName").unwrap_or_default();
        self.repo(&scope, repo)?;
        let p = self.policy(&scope, repo)?;
        Ok(
            json!({"registryId": scope.account, "repositoryName": repo, "policyText": p.value["policyText"]}),
        )
    }

    pub(crate) fn delete_repository_policy(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let repo = str_of(input, "repositoryName").unwrap_or_default();
        self.repo(&scope, repo)?;
        let p = self.policy(&scope, repo)?;
        self.write(&[], vec![Op::Delete(p.key.clone())])?;
        Ok(
            json!({"registryId": scope.account, "repositoryName": repo, "policyText": p.value["policyText"]}),
        )
    }

    fn policy(&self, scope: &Scope, repo: &str) -> ApiResult<Record> {
        self.registry.store.get(&policy_key(scope, repo)).ok_or_else(|| {
            ApiError::client(
                "RepositoryPolicyNotFoundException",
                format!("Repository policy does not exist for the repository with name '{repo}' in the registry with id '{}'", scope.account),
            )
        })
    }

    pub(crate) fn describe_registry(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        Ok(json!({"registryId": scope.account, "replicationConfiguration": {"rules": []}}))
    }

    /// The repository a resource ARN names: `arn:aws:ecr:REGION:ACCOUNT:repository/NAME`.
    fn repo_by_arn(&self, ctx: &RequestContext, arn: &str) -> ApiResult<Record> {
        let prefix = format!("arn:aws:ecr:{}:{}:repository/", ctx.region, ctx.account);
        let name = arn.strip_prefix(&prefix).ok_or_else(|| invalid(format!("Invalid parameter at 'resourceArn': {arn} is not a repository ARN of this registry.")))?;
        let scope = Scope {
            account: ctx.account.clone(),
            region: ctx.region.clone(),
        };
        self.repo(&scope, name)
    }

    pub(crate) fn tag_resource(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let new = input
            .get("tags")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        crate::check_tags(&new)?;
        self.retag(ctx, input, |old| {
            let mut out: Vec<Value> = old
                .iter()
                .filter(|t| !new.iter().any(|n| n["Key"] == t["Key"]))
                .cloned()
                .collect();
            out.extend(new.iter().cloned());
            out
        })
    }

    pub(crate) fn untag_resource(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let keys: HashSet<String> = input
            .get("tagKeys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        self.retag(ctx, input, |old| {
            old.iter()
                .filter(|t| !t["Key"].as_str().is_some_and(|k| keys.contains(k)))
                .cloned()
                .collect()
        })
    }

    fn retag(
        &self,
        ctx: &RequestContext,
        input: &Value,
        f: impl Fn(&[Value]) -> Vec<Value>,
    ) -> ApiResult<Value> {
        let arn = str_of(input, "resourceArn").unwrap_or_default();
        let busy = || server_err("The repository is being modified concurrently; try again.");
        berth_toolkit::commit(self.registry.store.as_ref(), busy, || {
            let r = self.repo_by_arn(ctx, arn)?;
            let mut repo = (*r.value).clone();
            let tags = f(repo
                .get("tags")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]));
            if tags.len() > 50 {
                return Err(ApiError::client(
                    "TooManyTagsException",
                    "A repository can have at most 50 tags.",
                ));
            }
            repo["tags"] = Value::Array(tags);
            let mut plan = berth_toolkit::Plan::new(json!({}));
            plan.put(&r, repo);
            Ok(plan)
        })
    }

    pub(crate) fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let r = self.repo_by_arn(ctx, str_of(input, "resourceArn").unwrap_or_default())?;
        Ok(json!({"tags": r.value.get("tags").cloned().unwrap_or(json!([]))}))
    }
}
