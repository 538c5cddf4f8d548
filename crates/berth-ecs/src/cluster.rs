//! Clusters: Create, Describe, List, Update, UpdateClusterSettings,
//! PutClusterCapacityProviders, Delete.

use crate::common::*;
use crate::Ecs;
use berth_store::{Cond, Op};
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};

const BUILT_IN_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

impl Ecs {
    pub(crate) fn create_cluster(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let name = str_of(input, "clusterName").unwrap_or("default");
        if !is_simple_name(name) {
            return Err(invalid(
                "Cluster name must be between 1 and 255 characters: letters (uppercase and lowercase), numbers, hyphens and underscores.",
            ));
        }
        check_tags(arr_of(input, "tags"))?;
        let providers = arr_of(input, "capacityProviders");
        let strategy = arr_of(input, "defaultCapacityProviderStrategy");
        self.check_providers(ctx, providers, strategy)?;
        let k = key(ctx, &format!("cluster/{name}"));
        let existing = self.store.get(&k);
        if let Some(r) = &existing {
            if r.value["status"] == "ACTIVE" {
                // CreateCluster is idempotent for an existing active cluster.
                return Ok(json!({"cluster": render(&r.value, true, true, true, true)}));
            }
        }
        let settings = match input.get("settings").and_then(Value::as_array) {
            Some(s) if !s.is_empty() => Value::Array(s.clone()),
            _ => json!([{"name": "containerInsights", "value": "disabled"}]),
        };
        let mut cluster = json!({
            "clusterArn": arn(ctx, &format!("cluster/{name}")),
            "clusterName": name,
            "status": "ACTIVE",
            "registeredContainerInstancesCount": 0,
            "runningTasksCount": 0,
            "pendingTasksCount": 0,
            "activeServicesCount": 0,
            "statistics": [],
            "tags": arr_of(input, "tags"),
            "settings": settings,
            "capacityProviders": providers,
            "defaultCapacityProviderStrategy": strategy,
        });
        for f in ["configuration", "serviceConnectDefaults"] {
            if let Some(v) = input.get(f) {
                cluster[f] = v.clone();
            }
        }
        if let Some(ns) = input
            .pointer("/serviceConnectDefaults/namespace")
            .and_then(Value::as_str)
        {
            cluster["serviceConnectDefaults"] = json!({"namespace": ns});
        }
        let cond = match &existing {
            Some(r) => Cond::Revision(k.clone(), r.revision),
            None => Cond::Absent(k.clone()),
        };
        self.store
            .txn(&[cond], vec![Op::Put(k, cluster.clone())])
            .map_err(store_err)?;
        Ok(json!({"cluster": render(&cluster, true, true, true, true)}))
    }

    /// Capacity providers named on a cluster must exist; the strategy may only use them.
    fn check_providers(
        &self,
        ctx: &RequestContext,
        providers: &[Value],
        strategy: &[Value],
    ) -> ApiResult<()> {
        let mut names = vec![];
        for p in providers {
            let name = p.as_str().unwrap_or_default();
            if !BUILT_IN_PROVIDERS.contains(&name) {
                let exists = self
                    .store
                    .get(&key(ctx, &format!("capacity-provider/{name}")))
                    .is_some_and(|r| r.value["status"] == "ACTIVE");
                if !exists {
                    return Err(invalid(format!("The specified capacity provider '{name}' does not exist. Specify a valid capacity provider and try again.")));
                }
            }
            if names.contains(&name) {
                return Err(invalid(format!(
                    "The capacity provider '{name}' is specified more than once."
                )));
            }
            names.push(name);
        }
        let mut base_count = 0;
        for s in strategy {
            let name = str_of(s, "capacityProvider").unwrap_or_default();
            if !names.contains(&name) {
                return Err(invalid(format!(
                    "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again. ({name})"
                )));
            }
            if s.get("base").and_then(Value::as_i64).unwrap_or(0) > 0 {
                base_count += 1;
            }
        }
        if base_count > 1 {
            return Err(invalid("You can specify a base value for only one capacity provider in a capacity provider strategy."));
        }
        if strategy.len() > 1
            && strategy.iter().any(|s| {
                str_of(s, "capacityProvider").is_some_and(|n| BUILT_IN_PROVIDERS.contains(&n))
            })
            && strategy.iter().any(|s| {
                str_of(s, "capacityProvider").is_some_and(|n| !BUILT_IN_PROVIDERS.contains(&n))
            })
        {
            return Err(invalid("A capacity provider strategy cannot contain a mix of capacity providers using Auto Scaling groups and Fargate providers. Specify one or the other and try again."));
        }
        Ok(())
    }

    pub(crate) fn describe_clusters(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let ids: Vec<String> = match input.get("clusters").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec!["default".to_string()],
        };
        if ids.len() > 100 {
            return Err(invalid(
                "The number of clusters to describe must be 100 or fewer.",
            ));
        }
        let (tags, settings, stats, config) = (
            include_has(input, "TAGS"),
            include_has(input, "SETTINGS"),
            include_has(input, "STATISTICS"),
            include_has(input, "CONFIGURATIONS"),
        );
        let mut clusters = vec![];
        let mut failures = vec![];
        for id in ids {
            let found = name_from(ctx, &id, "cluster")
                .and_then(|n| self.store.get(&key(ctx, &format!("cluster/{n}"))));
            match found {
                Some(r) => {
                    let mut c = render(&r.value, tags, settings, stats, config);
                    let name = str_of(&r.value, "clusterName").unwrap_or_default();
                    let (mut running, mut pending) = (0, 0);
                    self.store.scan(
                        &key(ctx, &format!("task/{name}/")),
                        None,
                        false,
                        usize::MAX,
                        &mut |t| {
                            match t.value["lastStatus"].as_str() {
                                Some("RUNNING") => running += 1,
                                Some("PROVISIONING" | "PENDING" | "ACTIVATING") => pending += 1,
                                _ => {}
                            }
                            false
                        },
                    );
                    // ACTIVE and DRAINING instances count as registered.
                    let instances = self
                        .store
                        .list(&key(ctx, &format!("container-instance/{name}/")))
                        .iter()
                        .filter(|r| r.value["status"] != "INACTIVE")
                        .count();
                    c["registeredContainerInstancesCount"] = json!(instances);
                    c["runningTasksCount"] = json!(running);
                    c["pendingTasksCount"] = json!(pending);
                    if stats {
                        c["statistics"] = json!([]);
                    }
                    clusters.push(c);
                }
                None => {
                    let a = if id.starts_with("arn:") {
                        id
                    } else {
                        arn(ctx, &format!("cluster/{id}"))
                    };
                    failures.push(json!({"arn": a, "reason": "MISSING"}));
                }
            }
        }
        Ok(json!({"clusters": clusters, "failures": failures}))
    }

    pub(crate) fn list_clusters(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let arns: Vec<String> = self
            .store
            .list(&key(ctx, "cluster/"))
            .into_iter()
            .filter(|r| r.value["status"] == "ACTIVE")
            .filter_map(|r| str_of(&r.value, "clusterArn").map(str::to_string))
            .collect();
        let page = paginate(arns, |a| a.clone(), input, 100, 100, INVALID)?;
        Ok(json!({"clusterArns": page.items, "nextToken": page.next_token}))
    }

    pub(crate) fn delete_cluster(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let r = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let name = str_of(&r.value, "clusterName")
            .unwrap_or_default()
            .to_string();
        if self
            .store
            .list(&key(ctx, &format!("container-instance/{name}/")))
            .iter()
            .any(|r| r.value["status"] != "INACTIVE")
        {
            return Err(ApiError::client(
                "ClusterContainsContainerInstancesException",
                "The Cluster cannot be deleted while Container Instances are active or draining.",
            ));
        }
        if self
            .store
            .list(&key(ctx, &format!("service/{name}/")))
            .iter()
            .any(|r| r.value["status"] != "INACTIVE")
        {
            return Err(ApiError::client(
                "ClusterContainsServicesException",
                "The Cluster cannot be deleted while Services are active.",
            ));
        }
        if self
            .store
            .list(&key(ctx, &format!("task/{name}/")))
            .iter()
            .any(|r| r.value["lastStatus"] != "STOPPED")
        {
            return Err(ApiError::client(
                "ClusterContainsTasksException",
                "The Cluster cannot be deleted while Tasks are active.",
            ));
        }
        let mut c = (*r.value).clone();
        c["status"] = json!("INACTIVE");
        self.store
            .txn(
                &[Cond::Revision(r.key.clone(), r.revision)],
                vec![Op::Put(r.key.clone(), c.clone())],
            )
            .map_err(store_err)?;
        Ok(json!({"cluster": render(&c, true, true, true, true)}))
    }

    /// Read-modify-write of an active cluster.
    fn modify_cluster(
        &self,
        ctx: &RequestContext,
        input: &Value,
        f: impl Fn(&mut Value) -> ApiResult<()>,
    ) -> ApiResult<Value> {
        let busy = || busy("The cluster is being modified concurrently; try again.");
        berth_toolkit::commit(self.store.as_ref(), busy, || {
            let r = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
            let mut c = (*r.value).clone();
            f(&mut c)?;
            let mut plan = Plan::new(json!({"cluster": render(&c, true, true, true, true)}));
            plan.put(&r, c);
            Ok(plan)
        })
    }

    pub(crate) fn update_cluster(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        self.modify_cluster(ctx, input, |c| {
            if let Some(s) = input.get("settings").and_then(Value::as_array) {
                c["settings"] = merge_settings(c.get("settings"), s);
            }
            if let Some(v) = input.get("configuration") {
                c["configuration"] = v.clone();
            }
            if let Some(ns) = input
                .pointer("/serviceConnectDefaults/namespace")
                .and_then(Value::as_str)
            {
                c["serviceConnectDefaults"] = json!({"namespace": ns});
            }
            Ok(())
        })
    }

    pub(crate) fn update_cluster_settings(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let settings = arr_of(input, "settings").to_vec();
        self.modify_cluster(ctx, input, |c| {
            c["settings"] = merge_settings(c.get("settings"), &settings);
            Ok(())
        })
    }

    pub(crate) fn put_cluster_capacity_providers(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let providers = arr_of(input, "capacityProviders").to_vec();
        let strategy = arr_of(input, "defaultCapacityProviderStrategy").to_vec();
        self.check_providers(ctx, &providers, &strategy)?;
        self.modify_cluster(ctx, input, |c| {
            c["capacityProviders"] = Value::Array(providers.clone());
            c["defaultCapacityProviderStrategy"] = Value::Array(strategy.clone());
            Ok(())
        })
    }
}

fn merge_settings(old: Option<&Value>, new: &[Value]) -> Value {
    let mut out: Vec<Value> = old.and_then(Value::as_array).cloned().unwrap_or_default();
    for s in new {
        match out.iter_mut().find(|o| o["name"] == s["name"]) {
            Some(o) => *o = s.clone(),
            None => out.push(s.clone()),
        }
    }
    Value::Array(out)
}

/// The cluster as DescribeClusters shows it: optional parts only when asked for.
fn render(c: &Value, tags: bool, settings: bool, stats: bool, config: bool) -> Value {
    let mut out = c.clone();
    let obj = out.as_object_mut().expect("cluster is an object");
    if !tags {
        obj.remove("tags");
    }
    if !settings {
        obj.remove("settings");
    }
    if !stats {
        obj.remove("statistics");
    }
    if !config {
        obj.remove("configuration");
    }
    out
}
