//! Validation of a request document against its model shape: types, required members,
//! enums, lengths and ranges. Type mismatches are serialization errors; constraint
//! violations are reported with the service's validation error code in AWS's wording.

use crate::error::ApiError;
use crate::model::{Model, Shape, ShapeKind};
use serde_json::Value;

/// How a service names its validation failures (ECS: InvalidParameterException; query
/// services: ValidationError).
#[derive(Debug, Clone, Copy)]
pub struct ValidationCodes {
    pub constraint: &'static str,
    pub serialization: &'static str,
    /// EC2 names a missing required parameter with its own code (MissingParameter).
    pub missing: Option<&'static str>,
    /// EC2 refuses parameters it does not know (UnknownParameter); JSON services ignore them.
    pub unknown_parameter: Option<&'static str>,
}

impl ValidationCodes {
    /// awsJson services: constraint violations and serialization errors.
    pub const fn json(constraint: &'static str, serialization: &'static str) -> Self {
        ValidationCodes {
            constraint,
            serialization,
            missing: None,
            unknown_parameter: None,
        }
    }
    /// The ec2 protocol's codes.
    pub const fn ec2() -> Self {
        ValidationCodes {
            constraint: "InvalidParameterValue",
            serialization: "InvalidParameterValue",
            missing: Some("MissingParameter"),
            unknown_parameter: Some("UnknownParameter"),
        }
    }
}

pub fn validate(
    model: &Model,
    shape: &Shape,
    value: &Value,
    codes: ValidationCodes,
) -> Result<(), ApiError> {
    let mut path = String::new();
    check(model, shape, value, &mut path, codes)
}

fn constraint(codes: ValidationCodes, shown: &str, path: &str, rule: &str) -> ApiError {
    ApiError::client(
        codes.constraint,
        format!("1 validation error detected: Value {shown} at '{path}' failed to satisfy constraint: {rule}"),
    )
}

fn wrong_type(codes: ValidationCodes, path: &str, expected: &str) -> ApiError {
    let path = if path.is_empty() {
        "the request body"
    } else {
        path
    };
    ApiError::client(
        codes.serialization,
        format!("Expected {expected} for '{path}'"),
    )
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) if s.len() > 64 => format!(
            "'{}...'",
            &s[..s.char_indices().nth(60).map(|(i, _)| i).unwrap_or(s.len())]
        ),
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn check(
    model: &Model,
    shape: &Shape,
    value: &Value,
    path: &mut String,
    codes: ValidationCodes,
) -> Result<(), ApiError> {
    match shape.kind {
        ShapeKind::Structure => {
            let obj = value
                .as_object()
                .ok_or_else(|| wrong_type(codes, path, "an object"))?;
            for req in &shape.required {
                if obj.get(req).is_none_or(Value::is_null) {
                    let p = join(path, req);
                    if let Some(code) = codes.missing {
                        return Err(ApiError::client(
                            code,
                            format!("The request must contain the parameter {p}"),
                        ));
                    }
                    return Err(constraint(codes, "null", &p, "Member must not be null"));
                }
            }
            for (name, member) in &shape.members {
                if let Some(v) = obj.get(name) {
                    if v.is_null() {
                        continue;
                    }
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                    check(model, model.shape(&member.shape), v, path, codes)?;
                    path.truncate(len);
                }
            }
            Ok(())
        }
        ShapeKind::List => {
            let arr = value
                .as_array()
                .ok_or_else(|| wrong_type(codes, path, "a list"))?;
            length(shape, arr.len(), value, path, codes, "length")?;
            let member = model.shape(&shape.member.as_ref().expect("list has member").shape);
            for (i, v) in arr.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!(".{}", i + 1));
                check(model, member, v, path, codes)?;
                path.truncate(len);
            }
            Ok(())
        }
        ShapeKind::Map => {
            let obj = value
                .as_object()
                .ok_or_else(|| wrong_type(codes, path, "a map"))?;
            length(shape, obj.len(), value, path, codes, "length")?;
            let key_shape = model.shape(&shape.key.as_ref().expect("map has key").shape);
            let val_shape = model.shape(&shape.value.as_ref().expect("map has value").shape);
            for (k, v) in obj {
                let len = path.len();
                path.push_str(&format!(".{k}"));
                check(model, key_shape, &Value::String(k.clone()), path, codes)?;
                check(model, val_shape, v, path, codes)?;
                path.truncate(len);
            }
            Ok(())
        }
        ShapeKind::String => {
            let s = value
                .as_str()
                .ok_or_else(|| wrong_type(codes, path, "a string"))?;
            if !shape.enum_values.is_empty() && !shape.enum_values.iter().any(|e| e == s) {
                return Err(constraint(
                    codes,
                    &shown(value),
                    path,
                    &format!(
                        "Member must satisfy enum value set: [{}]",
                        shape.enum_values.join(", ")
                    ),
                ));
            }
            length(shape, s.chars().count(), value, path, codes, "length")
        }
        ShapeKind::Integer | ShapeKind::Long => {
            let n = value
                .as_i64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| wrong_type(codes, path, "an integer"))?;
            if shape.kind == ShapeKind::Integer && (n < i32::MIN as i64 || n > i32::MAX as i64) {
                return Err(wrong_type(codes, path, "a 32-bit integer"));
            }
            range(shape, n as f64, value, path, codes)
        }
        ShapeKind::Double | ShapeKind::Float => {
            let n = value
                .as_f64()
                .ok_or_else(|| wrong_type(codes, path, "a number"))?;
            range(shape, n, value, path, codes)
        }
        ShapeKind::Boolean => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| wrong_type(codes, path, "a boolean")),
        ShapeKind::Timestamp => {
            if value.is_number() || value.is_string() {
                Ok(())
            } else {
                Err(wrong_type(codes, path, "a timestamp"))
            }
        }
        ShapeKind::Blob => value
            .as_str()
            .map(|_| ())
            .ok_or_else(|| wrong_type(codes, path, "a base64 string")),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn length(
    shape: &Shape,
    len: usize,
    value: &Value,
    path: &str,
    codes: ValidationCodes,
    _what: &str,
) -> Result<(), ApiError> {
    if let Some(min) = shape.min {
        if (len as f64) < min {
            return Err(constraint(
                codes,
                &shown(value),
                path,
                &format!("Member must have length greater than or equal to {min}"),
            ));
        }
    }
    if let Some(max) = shape.max {
        if (len as f64) > max {
            return Err(constraint(
                codes,
                &shown(value),
                path,
                &format!("Member must have length less than or equal to {max}"),
            ));
        }
    }
    Ok(())
}

fn range(
    shape: &Shape,
    n: f64,
    value: &Value,
    path: &str,
    codes: ValidationCodes,
) -> Result<(), ApiError> {
    if let Some(min) = shape.min {
        if n < min {
            return Err(constraint(
                codes,
                &shown(value),
                path,
                &format!("Member must have value greater than or equal to {min}"),
            ));
        }
    }
    if let Some(max) = shape.max {
        if n > max {
            return Err(constraint(
                codes,
                &shown(value),
                path,
                &format!("Member must have value less than or equal to {max}"),
            ));
        }
    }
    Ok(())
}
