//! berth-ecs: the Amazon ECS control-plane API. Handlers validate with ECS's rules and
//! record desired state in the store; they never touch containers (controllers and the
//! node act on the state).

mod attributes;
pub use scheduler::spawn_scheduler;
mod capacity;
mod cluster;
mod common;
mod idempotency;
mod index;
mod instances;
mod scheduler;
mod services;
mod settings;
mod tags;
mod targets;
mod taskdef;
mod tasks;
mod unsupported;

use berth_store::Store;
use berth_wire::model::LazyModel;
use berth_wire::{ApiError, ApiResult, Clock, Model, RequestContext, Service, ValidationCodes};
use serde_json::Value;
use std::sync::Arc;

static MODEL: LazyModel = LazyModel::new(include_bytes!("../../berth-wire/models/ecs.json.gz"));

pub fn model() -> &'static Model {
    MODEL.get()
}

pub struct Ecs {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
    /// The hour (since the epoch) whose expired clientToken records were last removed.
    pub(crate) tokens_swept_hour: std::sync::atomic::AtomicI64,
    /// How long a stopped task stays describable before it is deleted (ECS: about an hour).
    pub(crate) task_retention_secs: f64,
}

impl Ecs {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        taskdef::index_active_revisions(store.as_ref());
        Ecs {
            store,
            clock,
            tokens_swept_hour: Default::default(),
            task_retention_secs: 3600.0,
        }
    }

    /// Keep stopped tasks `secs` seconds (of Berth's clock) before deleting them.
    pub fn retaining_stopped_tasks(mut self, secs: u64) -> Self {
        self.task_retention_secs = secs as f64;
        self
    }
}

/// A reply written as JSON, read back as a document.
fn from_json(body: Vec<u8>) -> ApiResult<Value> {
    serde_json::from_slice(&body).map_err(|e| berth_wire::ApiError::internal(e.to_string()))
}

impl Service for Ecs {
    fn model(&self) -> &'static Model {
        model()
    }

    fn metadata(&self) -> &'static berth_wire::model::Metadata {
        MODEL.metadata()
    }

    fn codes(&self) -> ValidationCodes {
        ValidationCodes::json("InvalidParameterException", "SerializationException")
    }

    fn call_json(
        &self,
        ctx: &RequestContext,
        operation: &str,
        input: &Value,
    ) -> Option<ApiResult<Vec<u8>>> {
        match operation {
            "DescribeTaskDefinition" => Some(self.describe_task_definition(ctx, input)),
            "ListTaskDefinitions" => Some(self.list_task_definitions(ctx, input)),
            _ => None,
        }
    }

    fn call(&self, ctx: &RequestContext, operation: &str, input: Value) -> ApiResult<Value> {
        let i = &input;
        match operation {
            "CreateCluster" => self.create_cluster(ctx, i),
            "DescribeClusters" => self.describe_clusters(ctx, i),
            "ListClusters" => self.list_clusters(ctx, i),
            "DeleteCluster" => self.delete_cluster(ctx, i),
            "UpdateCluster" => self.update_cluster(ctx, i),
            "UpdateClusterSettings" => self.update_cluster_settings(ctx, i),
            "PutClusterCapacityProviders" => self.put_cluster_capacity_providers(ctx, i),

            "RegisterTaskDefinition" => self.register_task_definition(ctx, i),
            // Answered by `call_json`; here for callers that want the document.
            "DescribeTaskDefinition" => from_json(self.describe_task_definition(ctx, i)?),
            "ListTaskDefinitions" => from_json(self.list_task_definitions(ctx, i)?),
            "ListTaskDefinitionFamilies" => self.list_task_definition_families(ctx, i),
            "DeregisterTaskDefinition" => self.deregister_task_definition(ctx, i),
            "DeleteTaskDefinitions" => self.delete_task_definitions(ctx, i),

            "RunTask" => self.run_task(ctx, i),
            "StartTask" => self.start_task(ctx, i),
            "StopTask" => self.stop_task(ctx, i),
            "DescribeTasks" => self.describe_tasks(ctx, i),
            "ListTasks" => self.list_tasks(ctx, i),

            "RegisterContainerInstance" => self.register_container_instance(ctx, i),
            "DeregisterContainerInstance" => self.deregister_container_instance(ctx, i),
            "ListContainerInstances" => self.list_container_instances(ctx, i),
            "DescribeContainerInstances" => self.describe_container_instances(ctx, i),
            "UpdateContainerInstancesState" => self.update_container_instances_state(ctx, i),

            "CreateService" => self.create_service(ctx, i),
            "DescribeServices" => self.describe_services(ctx, i),
            "ListServices" => self.list_services(ctx, i),
            "UpdateService" => self.update_service(ctx, i),
            "DeleteService" => self.delete_service(ctx, i),

            "CreateCapacityProvider" => self.create_capacity_provider(ctx, i),
            "DescribeCapacityProviders" => self.describe_capacity_providers(ctx, i),
            "UpdateCapacityProvider" => self.update_capacity_provider(ctx, i),
            "DeleteCapacityProvider" => self.delete_capacity_provider(ctx, i),

            "TagResource" => self.tag_resource(ctx, i),
            "UntagResource" => self.untag_resource(ctx, i),
            "ListTagsForResource" => self.list_tags_for_resource(ctx, i),

            "PutAccountSetting" => self.put_account_setting(ctx, i, false),
            "PutAccountSettingDefault" => self.put_account_setting(ctx, i, true),
            "ListAccountSettings" => self.list_account_settings(ctx, i),
            "DeleteAccountSetting" => self.delete_account_setting(ctx, i),

            "PutAttributes" => self.put_attributes(ctx, i),
            "ListAttributes" => self.list_attributes(ctx, i),
            "DeleteAttributes" => self.delete_attributes(ctx, i),

            _ => Err(ApiError::not_implemented("ecs", operation)),
        }
    }
}
