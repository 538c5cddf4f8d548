//! berth-ec2: the EC2 networking model. (Skeleton: filled in next.)

use berth_store::Store;
use berth_wire::{ApiError, ApiResult, Clock, Model, RequestContext, Service, ValidationCodes};
use serde_json::Value;
use std::sync::{Arc, OnceLock};

pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::from_gzip(include_bytes!("../../berth-wire/models/ec2.json.gz")))
}

pub struct Ec2 {
    #[allow(dead_code)]
    store: Arc<dyn Store>,
    #[allow(dead_code)]
    clock: Clock,
}

impl Ec2 {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Ec2 { store, clock }
    }
}

impl Service for Ec2 {
    fn model(&self) -> &'static Model {
        model()
    }
    fn codes(&self) -> ValidationCodes {
        ValidationCodes { constraint: "InvalidParameterValue", serialization: "InvalidParameterValue" }
    }
    fn call(&self, _ctx: &RequestContext, operation: &str, _input: Value) -> ApiResult<Value> {
        Err(ApiError::not_implemented("ec2", operation))
    }
}
