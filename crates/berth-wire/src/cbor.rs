//! Bodies of the smithy-rpc-v2-cbor protocol. A request's CBOR becomes the same JSON
//! document every other protocol produces (blobs as base64 strings, timestamps as epoch
//! seconds), so validation and handlers do not know which protocol carried it. A result
//! document goes out as CBOR shaped by the operation's output shape: timestamps as tag 1,
//! blobs as byte strings, numbers as the shape's type.

use crate::model::{Model, Shape, ShapeKind};
use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::Value;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One CBOR data item, the whole body, as a JSON document.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let mut reader = std::io::Cursor::new(body);
    let item: Cbor = ciborium::de::from_reader(&mut reader).map_err(|e| e.to_string())?;
    if reader.position() as usize != body.len() {
        return Err("trailing bytes after the CBOR data item".into());
    }
    to_json(item)
}

fn to_json(item: Cbor) -> Result<Value, String> {
    Ok(match item {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            if let Ok(n) = i64::try_from(i) {
                Value::from(n)
            } else if let Ok(n) = u64::try_from(i) {
                Value::from(n)
            } else {
                return Err(format!("integer {i} is out of range"));
            }
        }
        Cbor::Float(f) => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Number(n),
            // AWS's JSON protocols write these as strings.
            None if f.is_nan() => Value::from("NaN"),
            None if f > 0.0 => Value::from("Infinity"),
            None => Value::from("-Infinity"),
        },
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(B64.encode(b)),
        // Tag 1 is an epoch-seconds timestamp, the number the JSON protocols send too.
        Cbor::Tag(_, inner) => to_json(*inner)?,
        Cbor::Array(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Cbor::Map(pairs) => {
            let mut o = serde_json::Map::with_capacity(pairs.len());
            for (k, v) in pairs {
                let Cbor::Text(k) = k else {
                    return Err("map keys must be text strings".into());
                };
                o.insert(k, to_json(v)?);
            }
            Value::Object(o)
        }
        _ => return Err("unsupported CBOR item".into()),
    })
}

/// A result document as CBOR, shaped by `shape` (None: an operation without output).
pub fn encode(model: &Model, shape: Option<&Shape>, doc: &Value) -> Vec<u8> {
    let item = match shape {
        Some(s) => shaped(model, s, doc),
        None => Cbor::Map(vec![]),
    };
    let mut out = Vec::with_capacity(256);
    ciborium::ser::into_writer(&item, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// An error body: `__type` and `message`, as AWS's CBOR services send them.
pub fn encode_error(code: &str, message: &str) -> Vec<u8> {
    let item = Cbor::Map(vec![
        (Cbor::Text("__type".into()), Cbor::Text(code.into())),
        (Cbor::Text("message".into()), Cbor::Text(message.into())),
    ]);
    let mut out = Vec::with_capacity(64 + message.len());
    ciborium::ser::into_writer(&item, &mut out).expect("writing to a Vec cannot fail");
    out
}

fn shaped(model: &Model, shape: &Shape, v: &Value) -> Cbor {
    match (shape.kind, v) {
        (ShapeKind::Structure, Value::Object(o)) if !shape.members.is_empty() => Cbor::Map(
            shape
                .members
                .iter()
                .filter_map(|(name, m)| {
                    let x = o.get(name).filter(|x| !x.is_null())?;
                    Some((
                        Cbor::Text(name.clone()),
                        shaped(model, model.shape(&m.shape), x),
                    ))
                })
                .collect(),
        ),
        (ShapeKind::List, Value::Array(items)) => {
            let m = shape.member.as_ref().map(|m| model.shape(&m.shape));
            Cbor::Array(items.iter().map(|x| item(model, m, x)).collect())
        }
        (ShapeKind::Map, Value::Object(o)) => {
            let vs = shape.value.as_ref().map(|m| model.shape(&m.shape));
            Cbor::Map(
                o.iter()
                    .filter(|(_, x)| !x.is_null())
                    .map(|(k, x)| (Cbor::Text(k.clone()), item(model, vs, x)))
                    .collect(),
            )
        }
        (ShapeKind::Double | ShapeKind::Float, Value::Number(n)) => {
            Cbor::Float(n.as_f64().unwrap_or_default())
        }
        (ShapeKind::Double | ShapeKind::Float, Value::String(s)) => match s.as_str() {
            "NaN" => Cbor::Float(f64::NAN),
            "Infinity" => Cbor::Float(f64::INFINITY),
            "-Infinity" => Cbor::Float(f64::NEG_INFINITY),
            _ => Cbor::Text(s.clone()),
        },
        (ShapeKind::Timestamp, Value::Number(n)) => Cbor::Tag(1, Box::new(epoch(n.as_f64()))),
        (ShapeKind::Timestamp, Value::String(s)) => match crate::time::parse_iso8601(s) {
            Some(t) => Cbor::Tag(1, Box::new(epoch(Some(t)))),
            None => Cbor::Text(s.clone()),
        },
        (ShapeKind::Blob, Value::String(s)) => match B64.decode(s) {
            Ok(b) => Cbor::Bytes(b),
            Err(_) => Cbor::Bytes(s.as_bytes().to_vec()),
        },
        // Documents, and values whose type the shape does not fix.
        _ => plain(v),
    }
}

fn item(model: &Model, shape: Option<&Shape>, v: &Value) -> Cbor {
    match shape {
        Some(s) => shaped(model, s, v),
        None => plain(v),
    }
}

/// Whole seconds as an integer, fractions as a double (as smithy clients write them).
fn epoch(t: Option<f64>) -> Cbor {
    let t = t.unwrap_or_default();
    if t.fract() == 0.0 && t.abs() < 9.0e15 {
        Cbor::Integer((t as i64).into())
    } else {
        Cbor::Float(t)
    }
}

fn plain(v: &Value) -> Cbor {
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cbor::Integer(i.into()),
            (None, Some(u)) => Cbor::Integer(u.into()),
            _ => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(a) => Cbor::Array(a.iter().map(plain).collect()),
        Value::Object(o) => Cbor::Map(
            o.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (Cbor::Text(k.clone()), plain(x)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cbor(item: &Cbor) -> Vec<u8> {
        let mut out = vec![];
        ciborium::ser::into_writer(item, &mut out).unwrap();
        out
    }

    #[test]
    fn decodes_tags_bytes_and_numbers_into_the_json_document() {
        let body = cbor(&Cbor::Map(vec![
            (
                Cbor::Text("When".into()),
                Cbor::Tag(1, Box::new(Cbor::Float(1.5))),
            ),
            (Cbor::Text("Data".into()), Cbor::Bytes(b"hi".to_vec())),
            (Cbor::Text("N".into()), Cbor::Integer((-3).into())),
            (Cbor::Text("L".into()), Cbor::Array(vec![Cbor::Bool(true)])),
        ]));
        assert_eq!(
            decode(&body).unwrap(),
            json!({"When": 1.5, "Data": "aGk=", "N": -3, "L": [true]})
        );
    }

    #[test]
    fn refuses_what_is_not_one_well_formed_item() {
        let mut two = cbor(&Cbor::Integer(1.into()));
        two.extend(cbor(&Cbor::Integer(2.into())));
        assert!(decode(&two).is_err());
        assert!(decode(&[0xbf, 0x61]).is_err()); // truncated
        assert!(decode(&cbor(&Cbor::Map(vec![(
            Cbor::Integer(1.into()),
            Cbor::Null
        )])))
        .is_err());
        assert!(decode(b"").is_err());
    }
}
