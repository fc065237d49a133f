//! Message content between `google.protobuf.Value` and JSON.
//!
//! Content is "any JSON value" (contract section 4), and `Value` is
//! protobuf's own any-JSON type: tools such as grpcurl and every language's
//! JSON mapping show it as plain JSON. Its numbers are doubles, as in
//! JavaScript: an integral number within ±2^53 becomes a JSON integer (so
//! `1` stays `1`, not `1.0`); NaN and infinities have no JSON form and are
//! refused. Depth is bounded by prost's decoding recursion limit (100), below
//! the bus envelope's nesting limit.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number, Value as Json};

use crate::api::ApiError;

/// Largest integer a double holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// `Value` to JSON; `None` (field absent) is a missing content.
pub fn to_json(value: Option<Value>) -> Result<Option<Json>, ApiError> {
    value.map(convert).transpose()
}

fn convert(value: Value) -> Result<Json, ApiError> {
    let kind = value
        .kind
        .ok_or_else(|| ApiError::BadRequest("`content` holds a Value with no kind set".into()))?;
    Ok(match kind {
        Kind::NullValue(_) => Json::Null,
        Kind::BoolValue(b) => Json::Bool(b),
        Kind::StringValue(s) => Json::String(s),
        Kind::NumberValue(n) => number(n)?,
        Kind::ListValue(list) => Json::Array(
            list.values
                .into_iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
        ),
        Kind::StructValue(s) => Json::Object(
            s.fields
                .into_iter()
                .map(|(k, v)| convert(v).map(|v| (k, v)))
                .collect::<Result<Map<_, _>, _>>()?,
        ),
    })
}

fn number(n: f64) -> Result<Json, ApiError> {
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER {
        // Exact: |n| <= 2^53 fits an i64 without rounding.
        return Ok(Json::Number(Number::from(n as i64)));
    }
    Number::from_f64(n).map(Json::Number).ok_or_else(|| {
        ApiError::BadRequest("`content` holds a number JSON cannot carry (NaN or infinite)".into())
    })
}

/// JSON to `Value` (for answers that carry content).
pub fn from_json(json: Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::String(s) => Kind::StringValue(s),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(from_json).collect(),
        }),
        Json::Object(map) => Kind::StructValue(Struct {
            fields: map.into_iter().map(|(k, v)| (k, from_json(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_json() {
        let j = json!({"a": 1, "b": [true, null, "x", -2.5], "c": {"d": 9007199254740992_i64}});
        assert_eq!(to_json(Some(from_json(j.clone()))).unwrap(), Some(j));
    }

    #[test]
    fn refuses_what_json_cannot_carry() {
        for bad in [
            Value { kind: None },
            Value {
                kind: Some(Kind::NumberValue(f64::NAN)),
            },
            Value {
                kind: Some(Kind::NumberValue(f64::INFINITY)),
            },
        ] {
            assert!(matches!(to_json(Some(bad)), Err(ApiError::BadRequest(_))));
        }
        assert_eq!(to_json(None).unwrap(), None);
        assert_eq!(
            to_json(Some(Value {
                kind: Some(Kind::NumberValue(1e300))
            }))
            .unwrap(),
            Some(json!(1e300))
        );
    }
}
