//! berth-wire: the AWS protocols every Berth service speaks. It knows nothing about any
//! particular service beyond the models it is handed.

pub mod error;
pub mod model;
pub mod page;
pub mod query;
pub mod service;
pub mod sigv4;
pub mod time;
pub mod validate;

pub use error::{ApiError, ApiResult};
pub use model::Model;
pub use service::{RequestContext, Service, WireResponse};
pub use time::Clock;
pub use validate::ValidationCodes;

/// Generate a request id in AWS's format (a UUID).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
