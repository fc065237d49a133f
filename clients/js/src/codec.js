// @ts-check
/**
 * Frame codecs. A codec names the WebSocket subprotocol it speaks and turns
 * frames (plain objects) into WebSocket payloads and back.
 *
 * @typedef {object} Codec
 * @property {string} protocol the subprotocol offered to the server
 * @property {boolean} binary whether frames travel as binary WebSocket messages
 * @property {(frame: object) => string | Uint8Array} encode
 * @property {(data: string | ArrayBuffer | Uint8Array) => any} decode
 */

/** `wsgate.v1.json`: text frames. The default. @type {Codec} */
export const jsonCodec = {
  protocol: 'wsgate.v1.json',
  binary: false,
  encode: (frame) => JSON.stringify(frame),
  decode: (data) =>
    JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data)),
};

/**
 * `wsgate.v1.msgpack`: binary frames, MessagePack maps with the same keys.
 * The SDK has no dependencies: bring your MessagePack library, e.g.
 *
 *     import { encode, decode } from '@msgpack/msgpack';
 *     new WsgateClient({ codec: msgpackCodec(encode, decode) });
 *
 * @param {(value: unknown) => Uint8Array} encode
 * @param {(data: Uint8Array) => unknown} decode
 * @returns {Codec}
 */
export function msgpackCodec(encode, decode) {
  return {
    protocol: 'wsgate.v1.msgpack',
    binary: true,
    encode: (frame) => encode(frame),
    decode: (data) => {
      if (typeof data === 'string') throw new TypeError('text frame on a msgpack connection');
      return decode(data instanceof Uint8Array ? data : new Uint8Array(data));
    },
  };
}
