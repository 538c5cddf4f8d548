//! The contract between the edge and a service module, and the protocol dispatch that
//! turns a request body into a validated document and a result into a response body.

use crate::error::{ApiError, ApiResult};
use crate::model::Model;
use crate::query::{self, Flavor, Params};
use crate::validate::{validate, ValidationCodes};
use serde_json::Value;
use std::collections::HashMap;

/// Who is calling and where: derived from the SigV4 credential scope and the access key.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub account: String,
    pub region: String,
    pub request_id: String,
}

/// One AWS service. The edge routes to it; the wire layer decodes and validates its input
/// against `model()`; `call` sees a document keyed by the model's member names.
pub trait Service: Send + Sync {
    /// The whole model (parsed on first use).
    fn model(&self) -> &'static Model;
    /// Protocol, names and prefixes, without parsing the whole model.
    fn metadata(&self) -> &'static crate::model::Metadata;
    fn codes(&self) -> ValidationCodes;
    fn call(&self, ctx: &RequestContext, operation: &str, input: Value) -> ApiResult<Value>;
    /// An awsJson operation answered straight as its JSON body, for hot read paths that
    /// can write the reply from stored records without building a document first. The
    /// body must hold no `null` members. None: the operation goes to `call`.
    fn call_json(
        &self,
        _ctx: &RequestContext,
        _operation: &str,
        _input: &Value,
    ) -> Option<ApiResult<Vec<u8>>> {
        None
    }
}

pub struct WireResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The AWS error code, for logs and the x-amzn-ErrorType header.
    pub error_code: Option<String>,
    /// Headers the protocol adds (rest-json's bound members, `smithy-protocol`,
    /// `x-amzn-query-error`).
    pub headers: Vec<(String, String)>,
}

/// The protocols a request can arrive in. A model lists those its service accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Query,
    Ec2,
    RestJson,
    RpcV2Cbor,
}

impl Protocol {
    /// The name botocore's models use.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::Query => "query",
            Protocol::Ec2 => "ec2",
            Protocol::RestJson => "rest-json",
            Protocol::RpcV2Cbor => "smithy-rpc-v2-cbor",
        }
    }
    /// The protocol a service answers in when the request does not say (its first).
    pub fn preferred(model: &Model) -> Protocol {
        let first = model
            .metadata
            .protocols
            .first()
            .unwrap_or(&model.metadata.protocol);
        match first.as_str() {
            "json" => Protocol::Json,
            "ec2" => Protocol::Ec2,
            "rest-json" => Protocol::RestJson,
            "smithy-rpc-v2-cbor" => Protocol::RpcV2Cbor,
            _ => Protocol::Query,
        }
    }
}

/// An error in the envelope of the protocol the client spoke.
pub fn protocol_error(
    model: &Model,
    protocol: Protocol,
    e: &ApiError,
    request_id: &str,
) -> WireResponse {
    match protocol {
        Protocol::Json => json_error(model, e),
        Protocol::Query | Protocol::Ec2 => query_error(model, e, request_id),
        Protocol::RestJson => {
            let r = crate::rest::error(model, e);
            WireResponse {
                status: r.status,
                content_type: "application/json",
                body: r.body,
                error_code: Some(e.code.clone()),
                headers: query_compatible(model, e).into_iter().collect(),
            }
        }
        Protocol::RpcV2Cbor => cbor_error(model, e),
    }
}

/// awsQuery-compatible services (SQS, CloudWatch) keep their query error codes in a
/// header, `Code;Sender`, which SDKs prefer to `__type`. The code is the error shape's
/// `awsQueryError` code when the model gives one.
fn query_compatible(model: &Model, e: &ApiError) -> Option<(String, String)> {
    model.metadata.aws_query_compatible.as_ref()?;
    let code = model
        .shapes
        .get(&e.code)
        .and_then(|s| s.error.as_ref())
        .and_then(|t| t.code.clone())
        .unwrap_or_else(|| e.code.clone());
    let fault = if e.is_server_fault() {
        "Receiver"
    } else {
        "Sender"
    };
    Some(("x-amzn-query-error".to_string(), format!("{code};{fault}")))
}

pub fn service_label(model: &Model) -> &str {
    model
        .metadata
        .signing_name
        .as_deref()
        .unwrap_or(&model.metadata.endpoint_prefix)
}

/// awsJson 1.0/1.1: `operation` comes from X-Amz-Target.
pub fn handle_json(
    svc: &dyn Service,
    ctx: &RequestContext,
    operation: &str,
    body: &[u8],
) -> WireResponse {
    let model = svc.model();
    let result = (|| {
        let input = validated_input(svc, operation, "JSON", || {
            if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(serde_json::from_slice(body).map_err(|e| e.to_string()))
            }
        })?;
        if let Some(body) = svc.call_json(ctx, operation, &input) {
            return body;
        }
        Ok(to_json(&svc.call(ctx, operation, input)?))
    })();
    match result {
        Ok(body) => WireResponse {
            status: 200,
            content_type: json_content_type(model),
            body,
            error_code: None,
            headers: vec![],
        },
        Err(e) => json_error(model, &e),
    }
}

/// The input document of an RPC protocol's `operation`: `decode` gives the body's
/// document (None: an empty body, an empty document), which is then validated.
fn validated_input(
    svc: &dyn Service,
    operation: &str,
    format: &str,
    decode: impl FnOnce() -> Option<Result<Value, String>>,
) -> ApiResult<Value> {
    let model = svc.model();
    let op = model
        .operations
        .get(operation)
        .ok_or_else(|| ApiError::unknown_operation(operation))?;
    let input = match decode() {
        None => Value::Object(Default::default()),
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return Err(ApiError::client(
                svc.codes().serialization,
                format!("Malformed {format} request body: {e}"),
            ))
        }
    };
    if let Some(shape) = op.input.as_deref() {
        validate(model, model.shape(shape), &input, svc.codes())?;
    }
    Ok(input)
}

/// A document as AWS sends it: JSON without `null` members.
pub fn to_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    crate::json::write_json(&mut out, v);
    out
}

/// AWS never sends `null` members: an absent value is omitted.
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|_, x| !x.is_null());
            o.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn json_content_type(model: &Model) -> &'static str {
    if model.metadata.json_version.as_deref() == Some("1.0") {
        "application/x-amz-json-1.0"
    } else {
        "application/x-amz-json-1.1"
    }
}

pub fn json_error(model: &Model, e: &ApiError) -> WireResponse {
    let body = serde_json::json!({"__type": e.code, "message": e.message});
    WireResponse {
        status: e.status,
        content_type: json_content_type(model),
        body: serde_json::to_vec(&body).expect("JSON values serialize"),
        error_code: Some(e.code.clone()),
        headers: query_compatible(model, e).into_iter().collect(),
    }
}

/// awsQuery and ec2: form parameters with `Action` and `Version`.
pub fn handle_query(svc: &dyn Service, ctx: &RequestContext, params: &Params) -> WireResponse {
    let model = svc.model();
    let flavor = if model.metadata.protocol == "ec2" {
        Flavor::Ec2
    } else {
        Flavor::Query
    };
    let action = params.get("Action").cloned().unwrap_or_default();
    let result = (|| {
        if action.is_empty() {
            return Err(ApiError::client(
                "MissingAction",
                "The request must contain the parameter Action",
            ));
        }
        let op = model.operations.get(&action).ok_or_else(|| {
            ApiError::client(
                "InvalidAction",
                format!("The action {action} is not valid for this web service."),
            )
        })?;
        let input = match op.input.as_deref() {
            Some(shape) => {
                let shape = model.shape(shape);
                let (doc, unknown) =
                    query::decode_tracked(model, shape, params, flavor, svc.codes().serialization)?;
                if let (Some(code), Some(first)) = (svc.codes().unknown_parameter, unknown.first())
                {
                    return Err(ApiError::client(
                        code,
                        format!("The parameter {first} is not recognized"),
                    ));
                }
                validate(model, shape, &doc, svc.codes())?;
                doc
            }
            None => Value::Object(Default::default()),
        };
        svc.call(ctx, &action, input)
    })();
    match result {
        Ok(v) => {
            // AWS writes the namespace with a trailing slash; botocore's metadata omits it.
            let mut ns = model.metadata.xml_namespace.clone().unwrap_or_else(|| {
                format!(
                    "http://{}.amazonaws.com/doc/{}/",
                    model.metadata.endpoint_prefix, model.metadata.api_version
                )
            });
            if !ns.ends_with('/') {
                ns.push('/');
            }
            let mut out = String::with_capacity(512);
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            let out_shape = model.output_shape(&action);
            match flavor {
                Flavor::Ec2 => {
                    out.push_str(&format!(
                        "<{action}Response xmlns=\"{ns}\"><requestId>{}</requestId>",
                        ctx.request_id
                    ));
                    if let Some(shape) = out_shape {
                        query::encode_members(model, shape, &v, &mut out);
                    }
                    out.push_str(&format!("</{action}Response>"));
                }
                Flavor::Query => {
                    out.push_str(&format!("<{action}Response xmlns=\"{ns}\">"));
                    if let Some(shape) = out_shape {
                        out.push_str(&format!("<{action}Result>"));
                        query::encode_members(model, shape, &v, &mut out);
                        out.push_str(&format!("</{action}Result>"));
                    }
                    out.push_str(&format!(
                        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
                        ctx.request_id
                    ));
                }
            }
            WireResponse {
                status: 200,
                content_type: "text/xml",
                body: out.into_bytes(),
                error_code: None,
                headers: vec![],
            }
        }
        Err(e) => query_error(model, &e, &ctx.request_id),
    }
}

pub fn query_error(model: &Model, e: &ApiError, request_id: &str) -> WireResponse {
    xml_error(model.metadata.protocol == "ec2", e, request_id)
}

/// The XML error document of awsQuery and rest-xml (`<ErrorResponse>`), or EC2's
/// (`<Response><Errors>`).
fn xml_error(ec2: bool, e: &ApiError, request_id: &str) -> WireResponse {
    let mut msg = String::new();
    query::escape(&e.message, &mut msg);
    let body = if ec2 {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{}</Code><Message>{msg}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
            e.code
        )
    } else {
        let kind = if e.is_server_fault() {
            "Receiver"
        } else {
            "Sender"
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ErrorResponse><Error><Type>{kind}</Type><Code>{}</Code><Message>{msg}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            e.code
        )
    };
    WireResponse {
        status: e.status,
        content_type: "text/xml",
        body: body.into_bytes(),
        error_code: Some(e.code.clone()),
        headers: vec![],
    }
}

/// The protocol each AWS service's clients speak first, by its signing name or endpoint
/// prefix: every service botocore knows, so a request for one Berth has no model of is
/// still answered in a form its client parses (`tools/gen-models.py --all` writes it).
pub fn protocol_of_service(name: &str) -> Option<&'static str> {
    static TABLE: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| {
            serde_json::from_str(include_str!("../models/protocols.json"))
                .expect("models/protocols.json is a JSON object of strings")
        })
        .get(name)
        .map(String::as_str)
}

/// An error in the protocol botocore's metadata names (`query`, `ec2`, `rest-xml`,
/// `json`, `rest-json`, `smithy-rpc-v2-cbor`), for a request Berth has no model for.
pub fn error_in(protocol: &str, e: &ApiError, request_id: &str) -> WireResponse {
    match protocol {
        "query" | "ec2" | "rest-xml" => xml_error(protocol == "ec2", e, request_id),
        "smithy-rpc-v2-cbor" => WireResponse {
            status: e.status,
            content_type: "application/cbor",
            body: crate::cbor::encode_error(&e.code, &e.message),
            error_code: Some(e.code.clone()),
            headers: vec![("smithy-protocol".to_string(), "rpc-v2-cbor".to_string())],
        },
        // awsJson reads `__type`, rest-json the header.
        _ => WireResponse {
            status: e.status,
            content_type: "application/json",
            body: serde_json::to_vec(&serde_json::json!({"__type": e.code, "message": e.message}))
                .expect("JSON values serialize"),
            error_code: Some(e.code.clone()),
            headers: vec![("x-amzn-errortype".to_string(), e.code.clone())],
        },
    }
}

/// smithy-rpc-v2-cbor: `POST /service/{Service}/operation/{Operation}`, a CBOR body.
pub fn handle_cbor(
    svc: &dyn Service,
    ctx: &RequestContext,
    operation: &str,
    body: &[u8],
) -> WireResponse {
    let model = svc.model();
    let result = (|| {
        let input = validated_input(svc, operation, "CBOR", || {
            (!body.is_empty()).then(|| crate::cbor::decode(body))
        })?;
        let out = svc.call(ctx, operation, input)?;
        Ok(crate::cbor::encode(
            model,
            model.output_shape(operation),
            &out,
        ))
    })();
    match result {
        Ok(body) => WireResponse {
            status: 200,
            content_type: "application/cbor",
            body,
            error_code: None,
            headers: vec![("smithy-protocol".into(), "rpc-v2-cbor".into())],
        },
        Err(e) => cbor_error(model, &e),
    }
}

fn cbor_error(model: &Model, e: &ApiError) -> WireResponse {
    let mut headers = vec![("smithy-protocol".to_string(), "rpc-v2-cbor".to_string())];
    headers.extend(query_compatible(model, e));
    WireResponse {
        status: e.status,
        content_type: "application/cbor",
        body: crate::cbor::encode_error(&e.code, &e.message),
        error_code: Some(e.code.clone()),
        headers,
    }
}

/// rest-json: the operation was matched from the method and URI (`rest::Router`).
pub fn handle_rest_json(
    svc: &dyn Service,
    ctx: &RequestContext,
    operation: &str,
    req: &crate::rest::RestRequest,
) -> WireResponse {
    let model = svc.model();
    let result = (|| {
        let input = match model.input_shape(operation) {
            Some(shape) => {
                let doc = crate::rest::decode(model, shape, req, svc.codes().serialization)?;
                validate(model, shape, &doc, svc.codes())?;
                doc
            }
            None => Value::Object(Default::default()),
        };
        let out = svc.call(ctx, operation, input)?;
        Ok(crate::rest::encode(model, operation, &out))
    })();
    match result {
        Ok(r) => WireResponse {
            status: r.status,
            content_type: "application/json",
            body: r.body,
            error_code: None,
            headers: r.headers,
        },
        Err(e) => protocol_error(model, Protocol::RestJson, &e, &ctx.request_id),
    }
}

/// A service Berth does not serve yet, for a model it ships: requests are decoded and
/// validated like any other, then answered NotImplemented naming the operation, in the
/// protocol the client spoke (so SDKs show a clear error, not a parse failure).
pub struct Unserved {
    model: &'static crate::model::LazyModel,
    codes: ValidationCodes,
}

impl Unserved {
    pub const fn new(model: &'static crate::model::LazyModel, codes: ValidationCodes) -> Self {
        Unserved { model, codes }
    }
}

impl Service for Unserved {
    fn model(&self) -> &'static Model {
        self.model.get()
    }
    fn metadata(&self) -> &'static crate::model::Metadata {
        self.model.metadata()
    }
    fn codes(&self) -> ValidationCodes {
        self.codes
    }
    fn call(&self, _ctx: &RequestContext, operation: &str, _input: Value) -> ApiResult<Value> {
        Err(ApiError::not_implemented(
            service_label(self.model()),
            operation,
        ))
    }
}
