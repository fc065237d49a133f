//! Frames as `serde_json::Value`s to WebSocket messages and back, by codec:
//! JSON text frames or MessagePack binary maps (`wsgate.v1.msgpack`).

use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use wsgate_protocol::Codec;

use crate::ClientError;

/// Encodes one frame for a connection that speaks `codec`.
pub fn encode(codec: Codec, frame: &Value) -> Result<Message, ClientError> {
    Ok(match codec {
        Codec::Json => Message::Text(frame.to_string().into()),
        Codec::Msgpack => Message::Binary(
            rmp_serde::to_vec_named(frame)
                .map_err(|e| ClientError::Encode(e.to_string()))?
                .into(),
        ),
    })
}

/// Decodes a text (JSON) or binary (MessagePack) data message; `None` for
/// control messages.
pub fn decode(message: &Message) -> Option<Result<Value, ClientError>> {
    match message {
        Message::Text(text) => Some(
            serde_json::from_str(text.as_str()).map_err(|e| ClientError::Decode(e.to_string())),
        ),
        Message::Binary(bytes) => {
            Some(rmp_serde::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string())))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_codecs_round_trip() {
        let v = json!({"type": "ping", "ref": 7});
        for codec in [Codec::Json, Codec::Msgpack] {
            let m = encode(codec, &v).expect("encode");
            assert_eq!(decode(&m).expect("data").expect("decode"), v);
        }
        assert!(decode(&Message::Ping(Vec::new().into())).is_none());
    }
}
