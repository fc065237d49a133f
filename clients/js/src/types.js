// @ts-check
/**
 * The shapes the SDK speaks in: frames from the server, the client's events
 * and options. JSDoc types only (they become `types/types.d.ts`); no code.
 *
 * @typedef {import('./codec.js').Codec} Codec
 * @typedef {import('./errors.js').WsgateError} WsgateError
 * @typedef {{ type: string, ref?: string | number, [key: string]: any }} Frame
 * @typedef {{ type: 'welcome', user: string, session: string, node: string, protocol: string, ping_interval_ms: number, max_message_bytes: number }} Welcome
 * @typedef {object} Message
 * @property {'message'} type
 * @property {string} id
 * @property {'direct' | 'room' | 'broadcast'} kind
 * @property {string} from
 * @property {string} [to] direct messages
 * @property {string} [room] room messages
 * @property {any} content
 * @property {number} time ms since the epoch, set by the gateway
 * @property {boolean} [replay] it comes from the inbox (direct) or the room history (room), not live
 * @property {number} [offset] room messages: position in the room's history (1, 2, 3, ... within an epoch)
 * @property {string} [epoch] room messages: the history epoch `offset` belongs to
 * @typedef {{ type: 'presence', room: string, event: 'join' | 'leave', user: string }} PresenceEvent
 * @typedef {{ type: 'typing', from: string, to?: string, room?: string }} TypingEvent
 * @typedef {{ type: 'receipt', id: string, by: string, status: 'delivered' }} Receipt
 * @typedef {{ type: 'reply', ref?: string | number, ok: true, [key: string]: any }} Reply
 * @typedef {object} JoinReply
 * @property {'reply'} type
 * @property {true} ok
 * @property {string} room
 * @property {number} [member_count] users in the room, cluster-wide
 * @property {string[]} [members] their ids, only in rooms up to the server's presence-max-members
 * @property {string} [epoch] the room's history epoch
 * @property {number} [offset] the room's last message offset (0 before any)
 * @property {boolean} [recovered] only on a join with `since` (automatic re-joins)
 * @typedef {{ type: 'reply', ok: true, id: string, online: boolean, duplicate?: boolean }} SendReply
 * @typedef {{ type: 'reply', ok: true, id: string, offset?: number }} PublishReply `offset`: the message's position in the room's history (servers with room history)
 * @typedef {'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'} ConnectionState
 * @typedef {object} StateChange
 * @property {ConnectionState} state
 * @property {number} [attempt] failed attempts so far (connecting, reconnecting)
 * @property {number} [delayMs] wait before the next attempt (reconnecting)
 * @property {number} [retryAt] Date.now() of the next attempt (reconnecting)
 * @property {number} [code] close code of the connection that ended
 * @property {string} [reason] close reason of the connection that ended
 * @property {boolean} [everOpened] whether any connection ever got a welcome
 * @property {WsgateError} [error] why the client stopped (closed)
 * @typedef {'joining' | 'live' | 'recovering' | 'recovered' | 'not_recovered'} RoomStatus
 *   `joining`: first join in flight; `live`: joined, nothing to recover;
 *   `recovering`: re-join after a reconnect in flight; `recovered`: the
 *   re-join replays what was missed; `not_recovered`: messages were missed
 *   and cannot be replayed (refetch them from your backend)
 * @typedef {object} RoomPosition
 * @property {string} room
 * @property {string | undefined} epoch the room's history epoch (undefined: server without history)
 * @property {number | undefined} offset every message up to this offset was received (or predates the join)
 * @property {RoomStatus} status
 * @typedef {object} RecoveryEvent
 * @property {string} room
 * @property {string | undefined} epoch the epoch now in force
 * @property {number | undefined} since the offset the re-join asked to resume after
 * @property {number | undefined} offset the room's offset in the re-join reply
 * @property {'epoch_changed' | 'too_old' | 'no_position' | 'unsupported'} [reason] `notRecovered` only: history lost
 *   (new epoch), window passed, no position known yet, server without room history
 * @typedef {object} JoinedEvent
 * @property {string} room
 * @property {string[]} members
 * @property {number | undefined} memberCount
 * @property {boolean} rejoin an automatic re-join after a reconnect
 * @property {boolean | undefined} recovered the re-join's `recovered` (undefined on a first join)
 * @typedef {object} ClientEvents
 * @property {StateChange} state connection state changes, for UI
 * @property {Welcome} welcome every (re)connection's first frame
 * @property {Message} message room, broadcast and direct messages, repeats dropped
 * @property {Message} duplicate a message dropped as a repeat (direct: by id; room: by offset)
 * @property {PresenceEvent} presence
 * @property {TypingEvent} typing
 * @property {Receipt} receipt
 * @property {JoinedEvent} joined
 * @property {RecoveryEvent} recovered a re-join resumes the room where this client left it: the missed messages follow (`replay: true`)
 * @property {RecoveryEvent} notRecovered a re-join could not replay what was missed: refetch the room from your backend
 * @property {{ code: number, reason: string, wasClean: boolean }} disconnect a socket closed
 * @property {{ frame: Frame, error: WsgateError }} queue_overflow a request did not fit the offline queue
 * @property {WsgateError} error errors with no request to reject (unsolicited error frames, failed re-joins, failed handlers)
 * @typedef {<K extends keyof ClientEvents>(type: K, event: ClientEvents[K]) => void} EmitFn
 * @typedef {(context: { reason: 'connect' | 'refresh' | 'rejected' }) => string | Promise<string>} TokenProvider
 * @typedef {object} SocketLike
 * @property {number} readyState
 * @property {string} protocol
 * @property {string} binaryType
 * @property {(data: any) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {() => void} [terminate]
 * @property {((event: any) => void) | null} onopen
 * @property {((event: any) => void) | null} onmessage
 * @property {((event: any) => void) | null} onclose
 * @property {((event: any) => void) | null} onerror
 * @typedef {new (url: string, protocols?: string | string[]) => SocketLike} WebSocketConstructor
 * @typedef {object} ClientOptions
 * @property {string | (() => string)} [url] the `/ws` URL, or a function called before every connect (e.g. to rotate over nodes); default `/ws` on the page's origin (browsers)
 * @property {string | TokenProvider} [token] a JWT, or a function returning one (called on every connect and before expiry)
 * @property {string} [user] anonymous mode (`--allow-anonymous`): the user id to ask for
 * @property {WebSocketConstructor} [WebSocket] WebSocket implementation (Node: `import WebSocket from 'ws'`); default `globalThis.WebSocket`
 * @property {Codec} [codec] default `jsonCodec`
 * @property {boolean} [reconnect] default true
 * @property {number} [reconnectMinMs] default 500
 * @property {number} [reconnectMaxMs] default 20000
 * @property {number} [stableAfterMs] a connection open this long resets the backoff; default 5000
 * @property {number} [connectTimeoutMs] no welcome this long after dialing = failed attempt; default 10000
 * @property {number} [requestTimeoutMs] default 10000
 * @property {number} [heartbeatMarginMs] default 10000
 * @property {number} [queueLimit] offline queue size; default 100
 * @property {'reject' | 'drop-oldest'} [queueOverflow] default 'reject'
 * @property {boolean} [autoAck] ack direct messages after the handlers; default true (false: call `ack(id)`)
 * @property {number} [ackDelayMs] batch acks for this long; default 20
 * @property {number} [dedupeSize] direct message ids remembered; default 1000
 * @property {number} [refreshLeadMs] refresh the token this long before `exp`; default 60000
 * @property {number} [typingThrottleMs] at most one `typing` per target per this; default 2000
 * @property {number} [sendAttempts] attempts of one `send` (retried on `unavailable`, `timeout`, `disconnected`, `rate_limited` with the same id); default 5
 * @property {number} [sendRetryMinMs] first retry delay of a `send`; default 250
 * @property {number} [sendRetryMaxMs] retry delay cap of a `send`; default 5000
 * @property {number} [roomWindow] room offsets remembered past a hole, per room (a bound, for out-of-order delivery across nodes); default 1000
 * @property {() => number} [random] random source for the jitter (tests)
 */
export {};
