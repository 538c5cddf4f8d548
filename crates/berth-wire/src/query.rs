//! The awsQuery and ec2 protocols: form-encoded parameters in, XML out. Both are driven by
//! the model, so a service sees the same JSON document whatever protocol carried it, keyed
//! by the model's member names.

use crate::error::ApiError;
use crate::model::{Member, Model, Shape, ShapeKind};
use crate::time::format_iso8601;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Query,
    Ec2,
}

pub type Params = BTreeMap<String, String>;

pub fn parse_form(body: &[u8]) -> Params {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The name a member is sent under in a request.
fn input_name(flavor: Flavor, name: &str, member: &Member) -> String {
    match flavor {
        Flavor::Ec2 => {
            if let Some(q) = &member.query_name {
                q.clone()
            } else if let Some(l) = &member.location_name {
                let mut c = l.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                    None => name.to_string(),
                }
            } else {
                name.to_string()
            }
        }
        Flavor::Query => member
            .location_name
            .clone()
            .unwrap_or_else(|| name.to_string()),
    }
}

fn has_prefix(params: &Params, prefix: &str) -> bool {
    let dotted = format!("{prefix}.");
    params
        .range(prefix.to_string()..)
        .next()
        .is_some_and(|(k, _)| k == prefix || k.starts_with(&dotted))
        || params
            .range(dotted.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&dotted))
}

/// Build the JSON document for `shape` from the form parameters.
pub fn decode(
    model: &Model,
    shape: &Shape,
    params: &Params,
    flavor: Flavor,
    codes_serialization: &str,
) -> Result<Value, ApiError> {
    decode_tracked(model, shape, params, flavor, codes_serialization).map(|(v, _)| v)
}

/// As `decode`, also returning the parameters that named nothing in the shape.
pub fn decode_tracked(
    model: &Model,
    shape: &Shape,
    params: &Params,
    flavor: Flavor,
    code: &str,
) -> Result<(Value, Vec<String>), ApiError> {
    let used = RefCell::new(HashSet::new());
    let ctx = Decoder {
        model,
        params,
        flavor,
        code,
        used: &used,
    };
    let v = ctx.decode_struct(shape, "")?;
    let used = used.into_inner();
    let unknown = params
        .keys()
        .filter(|k| !used.contains(k.as_str()) && !is_envelope_parameter(k))
        .cloned()
        .collect();
    Ok((v, unknown))
}

/// Parameters of the protocol itself, not of any operation.
fn is_envelope_parameter(k: &str) -> bool {
    matches!(
        k,
        "Action"
            | "Version"
            | "AWSAccessKeyId"
            | "Signature"
            | "SignatureMethod"
            | "SignatureVersion"
            | "Timestamp"
            | "Expires"
    ) || k.starts_with("X-Amz-")
}

struct Decoder<'a> {
    model: &'a Model,
    params: &'a Params,
    flavor: Flavor,
    code: &'a str,
    used: &'a RefCell<HashSet<String>>,
}

impl Decoder<'_> {
    fn get(&self, key: &str) -> Option<&String> {
        let v = self.params.get(key);
        if v.is_some() {
            self.used.borrow_mut().insert(key.to_string());
        }
        v
    }

    fn decode_struct(&self, shape: &Shape, prefix: &str) -> Result<Value, ApiError> {
        let mut out = Map::new();
        for (name, member) in &shape.members {
            let key = if prefix.is_empty() {
                input_name(self.flavor, name, member)
            } else {
                format!("{prefix}.{}", input_name(self.flavor, name, member))
            };
            if let Some(v) = self.decode_value(member, &key)? {
                out.insert(name.clone(), v);
            }
        }
        Ok(Value::Object(out))
    }

    fn decode_value(&self, member: &Member, key: &str) -> Result<Option<Value>, ApiError> {
        let (model, params, flavor, code) = (self.model, self.params, self.flavor, self.code);
        let shape = model.shape(&member.shape);
        match shape.kind {
            ShapeKind::Structure => {
                if !has_prefix(params, key) {
                    return Ok(None);
                }
                Ok(Some(self.decode_struct(shape, key)?))
            }
            ShapeKind::List => {
                let item = shape.member.as_ref().expect("list member");
                let base = if flavor == Flavor::Ec2 || shape.flattened || member.flattened {
                    key.to_string()
                } else {
                    format!(
                        "{key}.{}",
                        item.location_name.as_deref().unwrap_or("member")
                    )
                };
                // An empty list is sent as the bare name with an empty value.
                if self.get(key).is_some_and(|v| v.is_empty()) {
                    return Ok(Some(Value::Array(vec![])));
                }
                let mut items = Vec::new();
                for i in 1.. {
                    let k = format!("{base}.{i}");
                    match self.decode_value(item, &k)? {
                        Some(v) => items.push(v),
                        None => break,
                    }
                    if i > 10_000 {
                        return Err(ApiError::client(
                            code,
                            format!("too many list entries for {key}"),
                        ));
                    }
                }
                Ok(if items.is_empty() {
                    None
                } else {
                    Some(Value::Array(items))
                })
            }
            ShapeKind::Map => {
                let key_m = shape.key.as_ref().expect("map key");
                let val_m = shape.value.as_ref().expect("map value");
                let base = if shape.flattened {
                    key.to_string()
                } else {
                    format!("{key}.entry")
                };
                let mut out = Map::new();
                for i in 1.. {
                    let k = format!(
                        "{base}.{i}.{}",
                        key_m.location_name.as_deref().unwrap_or("key")
                    );
                    let Some(kv) = self.get(&k) else { break };
                    let vk = format!(
                        "{base}.{i}.{}",
                        val_m.location_name.as_deref().unwrap_or("value")
                    );
                    let v = self.decode_value(val_m, &vk)?.unwrap_or(Value::Null);
                    out.insert(kv.clone(), v);
                }
                Ok(if out.is_empty() {
                    None
                } else {
                    Some(Value::Object(out))
                })
            }
            _ => {
                let Some(raw) = self.get(key) else {
                    return Ok(None);
                };
                Ok(Some(scalar(shape.kind, raw, key, code)?))
            }
        }
    }
}

fn scalar(kind: ShapeKind, raw: &str, key: &str, code: &str) -> Result<Value, ApiError> {
    let bad = |what: &str| {
        ApiError::client(
            code,
            format!("Invalid value '{raw}' for {key}: expected {what}"),
        )
    };
    Ok(match kind {
        ShapeKind::Integer | ShapeKind::Long => {
            Value::from(raw.trim().parse::<i64>().map_err(|_| bad("an integer"))?)
        }
        ShapeKind::Double | ShapeKind::Float => {
            let f = raw.trim().parse::<f64>().map_err(|_| bad("a number"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| bad("a finite number"))?
        }
        ShapeKind::Boolean => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        _ => Value::String(raw.to_string()),
    })
}

/// Text as XML character data. Control characters but tab and newline become character
/// references, as AWS writes them (a raw carriage return would not survive parsing).
pub fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n') => {
                out.push_str(&format!("&#x{:X};", c as u32))
            }
            c => out.push(c),
        }
    }
}

/// Serialize `value` (keyed by model member names) as the XML body of `shape`.
pub fn encode_members(model: &Model, shape: &Shape, value: &Value, out: &mut String) {
    let Some(obj) = value.as_object() else { return };
    for (name, member) in &shape.members {
        let Some(v) = obj.get(name) else { continue };
        if v.is_null() {
            continue;
        }
        let tag = member.location_name.as_deref().unwrap_or(name);
        encode_value(model, member, tag, v, out);
    }
}

fn encode_value(model: &Model, member: &Member, tag: &str, v: &Value, out: &mut String) {
    let shape = model.shape(&member.shape);
    match shape.kind {
        ShapeKind::Structure => {
            let _ = write!(out, "<{tag}>");
            encode_members(model, shape, v, out);
            let _ = write!(out, "</{tag}>");
        }
        ShapeKind::List => {
            let item = shape.member.as_ref().expect("list member");
            let items = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
            if shape.flattened || member.flattened {
                for it in items {
                    encode_value(model, item, tag, it, out);
                }
            } else {
                let item_tag = item.location_name.as_deref().unwrap_or("member");
                let _ = write!(out, "<{tag}>");
                for it in items {
                    encode_value(model, item, item_tag, it, out);
                }
                let _ = write!(out, "</{tag}>");
            }
        }
        ShapeKind::Map => {
            let key_m = shape.key.as_ref().expect("map key");
            let val_m = shape.value.as_ref().expect("map value");
            let kt = key_m.location_name.as_deref().unwrap_or("key");
            let vt = val_m.location_name.as_deref().unwrap_or("value");
            let _ = write!(out, "<{tag}>");
            if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    let _ = write!(out, "<entry><{kt}>");
                    escape(k, out);
                    let _ = write!(out, "</{kt}>");
                    encode_value(model, val_m, vt, val, out);
                    out.push_str("</entry>");
                }
            }
            let _ = write!(out, "</{tag}>");
        }
        ShapeKind::Timestamp => {
            let _ = write!(out, "<{tag}>");
            match v {
                Value::Number(n) => out.push_str(&format_iso8601(n.as_f64().unwrap_or(0.0))),
                Value::String(s) => escape(s, out),
                other => escape(&other.to_string(), out),
            }
            let _ = write!(out, "</{tag}>");
        }
        _ => {
            let _ = write!(out, "<{tag}>");
            match v {
                Value::String(s) => escape(s, out),
                other => escape(&other.to_string(), out),
            }
            let _ = write!(out, "</{tag}>");
        }
    }
}
