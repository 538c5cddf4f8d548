//! Typed operation inputs and outputs. A service's types are generated from its model
//! (`tools/gen-types.py`); each operation is a marker implementing [`Operation`]. The
//! protocol layer still validates the document against the model first; [`call`] then
//! turns the validated document into the operation's input type, runs the handler and
//! turns its output back into the document every protocol renders.

use crate::error::{ApiError, ApiResult};
use crate::validate::ValidationCodes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// One operation of a model: its wire name and its input and output types. `decode` and
/// `encode` are written out in each generated impl (as `decode_input` and `encode`), so
/// serde's code for a type is instantiated once, where the types are compiled, and not
/// again in every crate that dispatches to them.
pub trait Operation {
    const NAME: &'static str;
    type Input;
    type Output;
    fn decode(input: Value) -> Result<Self::Input, serde_json::Error>;
    fn encode(output: &Self::Output) -> Value;
}

/// Run `handler` on `input` as `O`'s typed input. A document the type refuses (a member
/// the model does not have; a value validation let through that the type cannot hold)
/// is the caller's fault: a 400 with the service's serialization code, never a panic.
pub fn call<O: Operation>(
    codes: ValidationCodes,
    input: Value,
    handler: impl FnOnce(O::Input) -> ApiResult<O::Output>,
) -> ApiResult<Value> {
    let input = O::decode(input).map_err(|e| {
        ApiError::client(
            codes.serialization,
            format!("The request does not fit the operation's input: {e}"),
        )
    })?;
    Ok(O::encode(&handler(input)?))
}

/// A validated document as an operation's input type.
pub fn decode_input<I: DeserializeOwned>(input: Value) -> Result<I, serde_json::Error> {
    serde_json::from_value(input)
}

/// An output as the document the protocols render. `()` (an operation without an output
/// shape) is the empty document.
pub fn encode<T: Serialize>(out: &T) -> Value {
    match serde_json::to_value(out) {
        Ok(Value::Null) => Value::Object(Default::default()),
        Ok(v) => v,
        // Generated outputs hold strings, numbers and maps with string keys only.
        Err(e) => unreachable!("a generated output always serializes: {e}"),
    }
}

/// The input of an operation whose model has no input shape: only `{}` fits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A timestamp member: seconds since the epoch, the number the JSON document carries
/// for every protocol (each protocol renders it its own way on the way out). On the way
/// in, the document may hold the number or an ISO-8601 string (query protocols).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Timestamp(pub f64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_f64().map(Timestamp),
            Value::String(s) => crate::time::parse_iso8601(&s).map(Timestamp),
            _ => None,
        }
        .ok_or_else(|| serde::de::Error::custom("expected a timestamp"))
    }
}

/// A service's `call` over its generated operations: each operation's name comes from its
/// marker type, and its handler must take and return that operation's types.
///
/// ```ignore
/// berth_wire::dispatch!(operation, input, self.codes(), op {
///     CreateLogGroup => |i| self.create_log_group(ctx, i),
/// } else Err(ApiError::not_implemented("logs", operation)))
/// ```
#[macro_export]
macro_rules! dispatch {
    ($operation:expr, $input:expr, $codes:expr, $ops:ident {
        $($op:ident => $handler:expr),* $(,)?
    } else $fallback:expr) => {
        match $operation {
            $(o if o == <$ops::$op as $crate::typed::Operation>::NAME => {
                $crate::typed::call::<$ops::$op>($codes, $input, $handler)
            })*
            _ => $fallback,
        }
    };
}

/// Serialize and Deserialize for a generated enum, through its `as_str` and `from_wire`:
/// the wire value is the model's, and only the model's values deserialize.
#[macro_export]
macro_rules! wire_enum {
    ($t:ident) => {
        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                $t::from_wire(&s).ok_or_else(|| {
                    ::serde::de::Error::custom(format!(
                        "'{s}' is not a value of {}",
                        stringify!($t)
                    ))
                })
            }
        }
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Color {
        Red,
        DarkBlue,
    }
    impl Color {
        fn as_str(self) -> &'static str {
            match self {
                Color::Red => "RED",
                Color::DarkBlue => "DARK_BLUE",
            }
        }
        fn from_wire(s: &str) -> Option<Self> {
            [Color::Red, Color::DarkBlue]
                .into_iter()
                .find(|c| c.as_str() == s)
        }
    }
    wire_enum!(Color);

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PaintInput {
        color: Color,
        at: Option<Timestamp>,
    }
    #[derive(Debug, Serialize)]
    struct PaintOutput {
        #[serde(skip_serializing_if = "Option::is_none")]
        previous: Option<Color>,
    }
    struct Paint;
    impl Operation for Paint {
        const NAME: &'static str = "Paint";
        type Input = PaintInput;
        type Output = PaintOutput;
        fn decode(input: Value) -> Result<PaintInput, serde_json::Error> {
            decode_input(input)
        }
        fn encode(output: &PaintOutput) -> Value {
            encode(output)
        }
    }
    const CODES: ValidationCodes = ValidationCodes::json("ValidationException", "Bad");

    #[test]
    fn a_call_decodes_runs_and_encodes() {
        let out = call::<Paint>(
            CODES,
            json!({"color": "DARK_BLUE", "at": "2026-11-26T07:13:26Z"}),
            |i| {
                assert_eq!(i.color, Color::DarkBlue);
                assert_eq!(i.at, Some(Timestamp(1_795_677_206.0)));
                Ok(PaintOutput {
                    previous: Some(Color::Red),
                })
            },
        )
        .unwrap();
        assert_eq!(out, json!({"previous": "RED"}));
        let none = call::<Paint>(CODES, json!({"color": "RED", "at": 5}), |_| {
            Ok(PaintOutput { previous: None })
        });
        assert_eq!(none.unwrap(), json!({}));
    }

    #[test]
    fn what_the_type_refuses_is_a_400() {
        for bad in [
            json!({"color": "RED", "brush": "wide"}),
            json!({"color": "GREEN"}),
            json!({}),
        ] {
            let e = call::<Paint>(CODES, bad.clone(), |_| unreachable!()).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "Bad"), "{bad}");
        }
        assert_eq!(encode(&()), json!({}));
        assert!(decode_input::<Empty>(json!({})).is_ok());
        assert!(decode_input::<Empty>(json!({"x": 1})).is_err());
    }
}
