//! AWS error values. Services return these; the edge renders them in the protocol's envelope.

use std::fmt;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    /// A 400 with the given AWS error code.
    pub fn client(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }
    /// The operation exists in AWS but not (yet) in Berth.
    pub fn not_implemented(service: &str, operation: &str) -> Self {
        Self::new(
            501,
            "NotImplemented",
            format!("{operation} is not implemented in Berth's {service} service yet"),
        )
    }
    pub fn unknown_operation(operation: &str) -> Self {
        Self::new(
            400,
            "UnknownOperationException",
            format!("Unknown operation {operation}"),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalFailure", message)
    }
    pub fn is_server_fault(&self) -> bool {
        self.status >= 500
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;
