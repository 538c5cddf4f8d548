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
                let text = metadata_text(self.gz);
                serde_json::from_str(&text).expect("embedded model has metadata")
            }
        })
    }

    pub fn get(&'static self) -> &'static Model {
        self.model.get_or_init(|| Model::from_gzip(self.gz))
    }
}

/// The `metadata` object of a gzipped model, decompressing only as far as its end.
/// tools/gen-models.py sorts keys, so the document starts `{"metadata":{...}`: starting
/// the server reads a few hundred bytes of each model, not whole models (EC2's is 1.2 MB).
fn metadata_text(gz: &[u8]) -> String {
    const START: &[u8] = b"{\"metadata\":";
    let mut d = flate2::read::GzDecoder::new(gz);
    let mut text = Vec::with_capacity(1024);
    let (mut depth, mut in_string, mut escaped, mut i) = (0usize, false, false, START.len());
    let mut chunk = [0u8; 512];
    loop {
        let n = d.read(&mut chunk).expect("embedded model is valid gzip");
        assert!(n > 0, "embedded model ends inside its metadata");
        text.extend_from_slice(&chunk[..n]);
        assert!(
            text.len() < START.len() || text.starts_with(START),
            "model must start with its metadata"
        );
        while i < text.len() {
            let c = text[i];
            i += 1;
            match (in_string, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (true, false, b'"') => in_string = false,
                (true, false, _) => {}
                (false, _, b'"') => in_string = true,
                (false, _, b'{' | b'[') => depth += 1,
                (false, _, b'}' | b']') => {
                    depth -= 1;
                    if depth == 0 {
                        return String::from_utf8(text[START.len()..i].to_vec())
                            .expect("embedded model is UTF-8");
                    }
                }
                _ => {}
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_read_from_the_start_matches_the_whole_model() {
        for gz in [
            &include_bytes!("../models/ec2.json.gz")[..],
            include_bytes!("../models/s3.json.gz"),
            include_bytes!("../models/cloudwatch.json.gz"),
            include_bytes!("../models/scheduler.json.gz"),
        ] {
            let m: Metadata = serde_json::from_str(&metadata_text(gz)).unwrap();
            let whole = Model::from_gzip(gz).metadata;
            assert_eq!(
                (
                    m.protocol,
                    m.protocols,
                    m.api_version,
                    m.endpoint_prefix,
                    m.target_prefix,
                    m.signing_name
                ),
                (
                    whole.protocol,
                    whole.protocols,
                    whole.api_version,
                    whole.endpoint_prefix,
                    whole.target_prefix,
                    whole.signing_name
                )
            );
        }
    }
}
