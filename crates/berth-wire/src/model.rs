//! botocore-derived service models (see tools/gen-models.py): the source of truth for
//! operation names, shapes, required members, enums and limits.

use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
pub struct Model {
    pub metadata: Metadata,
    pub operations: HashMap<String, Operation>,
    pub shapes: HashMap<String, Shape>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub protocol: String,
    pub api_version: String,
    pub endpoint_prefix: String,
    #[serde(default)]
    pub signing_name: Option<String>,
    #[serde(default)]
    pub target_prefix: Option<String>,
    #[serde(default)]
    pub json_version: Option<String>,
    #[serde(default)]
    pub xml_namespace: Option<String>,
    /// Every protocol the service accepts, in the model's order of preference (CloudWatch:
    /// smithy-rpc-v2-cbor, json, query). Empty in older models: then just `protocol`.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Present when a JSON or CBOR service keeps its awsQuery error codes: errors then
    /// carry them in the `x-amzn-query-error` header.
    #[serde(default)]
    pub aws_query_compatible: Option<serde_json::Value>,
}

impl Metadata {
    /// Whether the service accepts requests in this protocol.
    pub fn speaks(&self, protocol: &str) -> bool {
        if self.protocols.is_empty() {
            self.protocol == protocol
        } else {
            self.protocols.iter().any(|p| p == protocol)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub errors: Vec<String>,
    /// Where a REST protocol binds the operation (method and URI template).
    #[serde(default)]
    pub http: Option<HttpBinding>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBinding {
    pub method: String,
    pub request_uri: String,
    /// A REST operation's success status (200 when absent).
    #[serde(default)]
    pub response_code: Option<u16>,
}

#[derive(Debug, Deserialize)]
pub struct Shape {
    #[serde(rename = "type")]
    pub kind: ShapeKind,
    #[serde(default)]
    pub members: Vec<(String, Member)>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default, rename = "enum")]
    pub enum_values: Vec<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub flattened: bool,
    #[serde(default)]
    pub member: Option<Member>,
    #[serde(default)]
    pub key: Option<Member>,
    #[serde(default)]
    pub value: Option<Member>,
    /// On an error shape: its status and, for awsQuery-compatible services, its query code.
    #[serde(default)]
    pub error: Option<ErrorTrait>,
    /// A REST structure's member that is the whole body.
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default, rename = "timestampFormat")]
    pub timestamp_format: Option<String>,
    /// A structure of which exactly one member is set.
    #[serde(default)]
    pub union: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorTrait {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub http_status_code: Option<u16>,
    #[serde(default)]
    pub sender_fault: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeKind {
    Structure,
    List,
    Map,
    String,
    Integer,
    Long,
    Boolean,
    Double,
    Float,
    Timestamp,
    Blob,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub shape: String,
    #[serde(default)]
    pub location_name: Option<String>,
    #[serde(default)]
    pub query_name: Option<String>,
    #[serde(default)]
    pub flattened: bool,
    /// Where a REST protocol binds it: `uri`, `querystring`, `header`, `headers`.
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// A string member holding JSON (sent base64-encoded in headers).
    #[serde(default)]
    pub jsonvalue: bool,
}

/// A service's model, parsed on first use. Routing needs only the metadata, which is
/// read without building the shapes, so starting the server stays cheap.
pub struct LazyModel {
    gz: &'static [u8],
    metadata: OnceLock<Metadata>,
    model: OnceLock<Model>,
}

impl LazyModel {
    pub const fn new(gz: &'static [u8]) -> Self {
        LazyModel {
            gz,
            metadata: OnceLock::new(),
            model: OnceLock::new(),
        }
    }

    pub fn metadata(&'static self) -> &'static Metadata {
        self.metadata.get_or_init(|| match self.model.get() {
            Some(m) => m.metadata.clone(),
            None => {
                #[derive(Deserialize)]
                struct MetadataOnly {
                    metadata: Metadata,
                }
                let text = gunzip(self.gz);
                serde_json::from_str::<MetadataOnly>(&text)
                    .expect("embedded model has metadata")
                    .metadata
            }
        })
    }

    pub fn get(&'static self) -> &'static Model {
        self.model.get_or_init(|| Model::from_gzip(self.gz))
    }
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("embedded model is valid gzip");
    text
}

impl Model {
    /// Parse a gzipped model produced by tools/gen-models.py.
    pub fn from_gzip(bytes: &[u8]) -> Model {
        let text = gunzip(bytes);
        // Members arrive as a JSON object; keep them ordered as a list.
        let mut raw: serde_json::Value =
            serde_json::from_str(&text).expect("embedded model is JSON");
        if let Some(shapes) = raw.get_mut("shapes").and_then(|s| s.as_object_mut()) {
            for shape in shapes.values_mut() {
                if let Some(members) = shape.get_mut("members") {
                    if let Some(obj) = members.as_object() {
                        let list: Vec<serde_json::Value> =
                            obj.iter().map(|(k, v)| serde_json::json!([k, v])).collect();
                        *members = serde_json::Value::Array(list);
                    }
                }
            }
        }
        serde_json::from_value(raw).expect("embedded model matches the schema")
    }

    pub fn shape(&self, name: &str) -> &Shape {
        self.shapes
            .get(name)
            .unwrap_or_else(|| panic!("model has no shape {name}"))
    }

    pub fn input_shape(&self, op: &str) -> Option<&Shape> {
        self.operations
            .get(op)?
            .input
            .as_deref()
            .map(|s| self.shape(s))
    }

    pub fn output_shape(&self, op: &str) -> Option<&Shape> {
        self.operations
            .get(op)?
            .output
            .as_deref()
            .map(|s| self.shape(s))
    }
}

impl Shape {
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }
}
