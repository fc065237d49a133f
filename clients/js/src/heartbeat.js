// @ts-check
/**
 * Heartbeat watchdog for one connection.
 *
 * Browsers never expose WebSocket ping/pong frames to scripts, so the SDK
 * sends an application `{"type":"ping"}` every `intervalMs` (the server's
 * `welcome.ping_interval_ms`) and expects the `pong`, or any other frame, to
 * come back. If nothing at all arrives for `intervalMs + marginMs`, the
 * connection is considered dead (a half-open TCP connection after a laptop
 * sleep or a NAT timeout looks exactly like this) and `onDead` is called once.
 */
export class Heartbeat {
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #deadTimer;
  #running = false;

  /**
   * @param {{ intervalMs: number, marginMs: number, onPing: () => void, onDead: () => void }} options
   */
  constructor(options) {
    this.intervalMs = Math.max(1, options.intervalMs);
    this.marginMs = Math.max(0, options.marginMs);
    this.onPing = options.onPing;
    this.onDead = options.onDead;
  }

  get running() {
    return this.#running;
  }

  start() {
    this.stop();
    this.#running = true;
    this.#pingTimer = setInterval(() => this.onPing(), this.intervalMs);
    this.#arm();
  }

  /** Call on every frame received from the server. */
  touch() {
    if (this.#running) this.#arm();
  }

  stop() {
    this.#running = false;
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    if (this.#deadTimer !== undefined) clearTimeout(this.#deadTimer);
    this.#pingTimer = undefined;
    this.#deadTimer = undefined;
  }

  #arm() {
    if (this.#deadTimer !== undefined) clearTimeout(this.#deadTimer);
    this.#deadTimer = setTimeout(() => {
      this.stop();
      this.onDead();
    }, this.intervalMs + this.marginMs);
  }
}
