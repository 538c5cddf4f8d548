//! The contract between the edge and a service module, and the protocol dispatch that
//! turns a request body into a validated document and a result into a response body.

use crate::error::{ApiError, ApiResult};
use crate::model::Model;
use crate::query::{self, Flavor, Params};
use crate::validate::{validate, ValidationCodes};
use serde_json::Value;

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
        let op = model
            .operations
            .get(operation)
            .ok_or_else(|| ApiError::unknown_operation(operation))?;
        let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::client(
                    svc.codes().serialization,
                    format!("Malformed JSON request body: {e}"),
                )
            })?
        };
        if let Some(shape) = op.input.as_deref() {
            validate(model, model.shape(shape), &input, svc.codes())?;
        }
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
        },
        Err(e) => json_error(model, &e),
    }
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
            }
        }
        Err(e) => query_error(model, &e, &ctx.request_id),
    }
}

pub fn query_error(model: &Model, e: &ApiError, request_id: &str) -> WireResponse {
    let mut msg = String::new();
    query::escape(&e.message, &mut msg);
    let body = if model.metadata.protocol == "ec2" {
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
    }
}
