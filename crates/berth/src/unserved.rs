//! The services whose models Berth ships but does not serve yet. Their requests are
//! decoded in the protocol the client speaks and validated against the model, then
//! answered NotImplemented naming the operation, so a client sees exactly what is
//! missing. Each moves to its own crate when its issue makes it real.

use berth_wire::model::LazyModel;
use berth_wire::service::Unserved;
use berth_wire::{Service, ValidationCodes};
use std::sync::Arc;

macro_rules! model {
    ($name:ident, $file:literal) => {
        static $name: LazyModel =
            LazyModel::new(include_bytes!(concat!("../../berth-wire/models/", $file)));
    };
}

model!(SQS, "sqs.json.gz");
model!(SNS, "sns.json.gz");
model!(EVENTS, "events.json.gz");
model!(SCHEDULER, "scheduler.json.gz");
model!(CLOUDWATCH, "cloudwatch.json.gz");
model!(AUTOSCALING, "application-autoscaling.json.gz");
model!(IAM, "iam.json.gz");
model!(STS, "sts.json.gz");
model!(SECRETS, "secretsmanager.json.gz");
model!(SSM, "ssm.json.gz");
model!(SERVICE_DISCOVERY, "servicediscovery.json.gz");
model!(ACM, "acm.json.gz");

/// JSON, rest-json and CBOR services name constraint failures ValidationException.
const JSON: ValidationCodes =
    ValidationCodes::json("ValidationException", "SerializationException");
/// awsQuery services: ValidationError for both.
const QUERY: ValidationCodes = ValidationCodes::json("ValidationError", "ValidationError");

pub fn all() -> Vec<Arc<dyn Service>> {
    let json = |m: &'static LazyModel| Arc::new(Unserved::new(m, JSON)) as Arc<dyn Service>;
    let query = |m: &'static LazyModel| Arc::new(Unserved::new(m, QUERY)) as Arc<dyn Service>;
    vec![
        json(&SQS),
        query(&SNS),
        json(&EVENTS),
        json(&SCHEDULER),
        json(&CLOUDWATCH),
        json(&AUTOSCALING),
        query(&IAM),
        query(&STS),
        json(&SECRETS),
        json(&SSM),
        json(&SERVICE_DISCOVERY),
        json(&ACM),
    ]
}
