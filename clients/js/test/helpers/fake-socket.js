// @ts-check
/**
 * A fake WebSocket for unit tests: records what the client sends and lets
 * the test play the server (open, frames, close), synchronously.
 */
export class FakeWebSocket {
  /** @type {FakeWebSocket[]} */
  static instances = [];

  /** @param {string} url @param {string | string[]} [protocols] */
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.protocol = '';
    this.binaryType = 'blob';
    /** @type {any[]} */
    this.sent = [];
    /** @type {{ code?: number, reason?: string } | null} */
    this.closedWith = null;
    this.terminated = false;
    /** @type {((event: any) => void) | null} */
    this.onopen = null;
    /** @type {((event: any) => void) | null} */
    this.onmessage = null;
    /** @type {((event: any) => void) | null} */
    this.onclose = null;
    /** @type {((event: any) => void) | null} */
    this.onerror = null;
    FakeWebSocket.instances.push(this);
  }

  static reset() {
    FakeWebSocket.instances = [];
  }

  /** The most recent socket. */
  static get last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  /** @param {any} data */
  send(data) {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data));
  }

  /** @param {number} [code] @param {string} [reason] */
  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  terminate() {
    this.terminated = true;
    this.readyState = 3;
  }

  // ---- the server side ----

  /** Opens the socket and sends a welcome. */
  serverOpen(welcome = {}) {
    this.readyState = 1;
    this.protocol = 'wsgate.v1.json';
    this.onopen?.({});
    this.serverSend({
      type: 'welcome',
      user: 'alice',
      session: 's1',
      node: 'n1',
      protocol: 'wsgate.v1',
      ping_interval_ms: 25000,
      max_message_bytes: 65536,
      ...welcome,
    });
  }

  /** @param {object} frame */
  serverSend(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** @param {number} code @param {string} [reason] */
  serverClose(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  /** Frames sent of one type. @param {string} type */
  sentOfType(type) {
    return this.sent.filter((f) => f.type === type);
  }

  /** Replies to the last sent frame of `type` with `fields`. @param {string} type @param {object} fields */
  reply(type, fields = {}) {
    const frame = this.sentOfType(type).at(-1);
    if (!frame) throw new Error(`nothing of type ${type} was sent`);
    this.serverSend({ type: 'reply', ok: true, ref: frame.ref, ...fields });
  }
}

/** Lets pending promise callbacks run. */
export async function flush() {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
