use berth_store::Store;
use berth_wire::{ApiError, ApiResult, Clock, Model, RequestContext, Service, ValidationCodes};
use serde_json::Value;
use std::sync::{Arc, OnceLock};

pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::from_gzip(include_bytes!("../../berth-wire/models/ecs.json.gz")))
}

pub struct Ecs {
    #[allow(dead_code)]
    store: Arc<dyn Store>,
    #[allow(dead_code)]
    clock: Clock,
}

impl Ecs {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Ecs { store, clock }
    }
}

impl Service for Ecs {
    fn model(&self) -> &'static Model {
        model()
    }
    fn codes(&self) -> ValidationCodes {
        ValidationCodes { constraint: "InvalidParameterException", serialization: "SerializationException" }
    }
    fn call(&self, _ctx: &RequestContext, operation: &str, _input: Value) -> ApiResult<Value> {
        Err(ApiError::not_implemented("ecs", operation))
    }
}
