//! Repository policies, repository tags and DescribeRegistry.

use crate::types::*;
use crate::{invalid, scope, server_err, Ecr};
use berth_registry::Scope;
use berth_store::{Cond, Op, Record};
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde::Deserialize;
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

/// A repository record's tags (stored as the API's `[{"Key", "Value"}]`).
fn tags_of(repo: &Value) -> Vec<Tag> {
    Vec::<Tag>::deserialize(&repo["tags"]).unwrap_or_default()
}

/// A stored policy's text.
fn policy_text(p: &Record) -> Option<String> {
    p.value["policyText"].as_str().map(str::to_string)
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
        input: SetRepositoryPolicyRequest,
    ) -> ApiResult<SetRepositoryPolicyResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        // `force` overrides a lock-out check; Berth evaluates no policies, so there is none.
        let _ = input.force;
        let text = input.policy_text.as_str();
        check_policy(text)?;
        self.write(
            &[],
            vec![Op::Put(
                policy_key(&scope, repo),
                json!({"policyText": text}),
            )],
        )?;
        Ok(SetRepositoryPolicyResponse {
            registry_id: Some(scope.account.clone()),
            repository_name: Some(repo.to_string()),
            policy_text: Some(text.to_string()),
        })
    }

    pub(crate) fn get_repository_policy(
        &self,
        ctx: &RequestContext,
        input: GetRepositoryPolicyRequest,
    ) -> ApiResult<GetRepositoryPolicyResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let p = self.policy(&scope, repo)?;
        Ok(GetRepositoryPolicyResponse {
            registry_id: Some(scope.account.clone()),
            repository_name: Some(repo.to_string()),
            policy_text: policy_text(&p),
        })
    }

    pub(crate) fn delete_repository_policy(
        &self,
        ctx: &RequestContext,
        input: DeleteRepositoryPolicyRequest,
    ) -> ApiResult<DeleteRepositoryPolicyResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let p = self.policy(&scope, repo)?;
        self.write(&[], vec![Op::Delete(p.key.clone())])?;
        Ok(DeleteRepositoryPolicyResponse {
            registry_id: Some(scope.account.clone()),
            repository_name: Some(repo.to_string()),
            policy_text: policy_text(&p),
        })
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
        input: DescribeRegistryRequest,
    ) -> ApiResult<DescribeRegistryResponse> {
        let DescribeRegistryRequest {} = input;
        Ok(DescribeRegistryResponse {
            registry_id: Some(scope(ctx, None)?.account),
            replication_configuration: Some(ReplicationConfiguration { rules: vec![] }),
        })
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

    pub(crate) fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: TagResourceRequest,
    ) -> ApiResult<TagResourceResponse> {
        crate::check_tags(&input.tags)?;
        self.retag(ctx, &input.resource_arn, |old| {
            let mut out: Vec<Tag> = old
                .into_iter()
                .filter(|t| !input.tags.iter().any(|n| n.key == t.key))
                .collect();
            out.extend(input.tags.iter().cloned());
            out
        })?;
        Ok(TagResourceResponse {})
    }

    pub(crate) fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: UntagResourceRequest,
    ) -> ApiResult<UntagResourceResponse> {
        let keys: HashSet<&String> = input.tag_keys.iter().collect();
        self.retag(ctx, &input.resource_arn, |old| {
            old.into_iter().filter(|t| !keys.contains(&t.key)).collect()
        })?;
        Ok(UntagResourceResponse {})
    }

    /// Replace a repository's tags with `f` of its current ones.
    fn retag(
        &self,
        ctx: &RequestContext,
        arn: &str,
        f: impl Fn(Vec<Tag>) -> Vec<Tag>,
    ) -> ApiResult<Value> {
        let busy = || server_err("The repository is being modified concurrently; try again.");
        berth_toolkit::commit(self.registry.store.as_ref(), busy, || {
            let r = self.repo_by_arn(ctx, arn)?;
            let mut repo = (*r.value).clone();
            let tags = f(tags_of(&repo));
            if tags.len() > 50 {
                return Err(ApiError::client(
                    "TooManyTagsException",
                    "A repository can have at most 50 tags.",
                ));
            }
            repo["tags"] = json!(tags);
            let mut plan = berth_toolkit::Plan::new(json!({}));
            plan.put(&r, repo);
            Ok(plan)
        })
    }

    pub(crate) fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: ListTagsForResourceRequest,
    ) -> ApiResult<ListTagsForResourceResponse> {
        let r = self.repo_by_arn(ctx, &input.resource_arn)?;
        Ok(ListTagsForResourceResponse {
            tags: Some(tags_of(&r.value)),
        })
    }
}
