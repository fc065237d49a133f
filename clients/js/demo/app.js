// @ts-check
/**
 * wsgate demo chat: a small app on the SDK, served by wsgate itself.
 * No build step: the SDK is imported from the server as plain ES modules.
 */
import { WsgateClient } from '/sdk/index.js';

/**
 * @typedef {import('/sdk/index.js').WsgateError} WsgateError
 * @typedef {import('/sdk/client.js').Message} Message
 * @typedef {import('/sdk/client.js').StateChange} StateChange
 * @typedef {{ id?: string, localId?: number, from: string, text: string, time: number, mine: boolean, replay?: boolean, status?: string }} Item
 * @typedef {{ key: string, kind: 'room' | 'dm' | 'broadcast', name: string, items: Item[], unread: number, members: Set<string>, typing: Map<string, number>, presence?: string }} Conversation
 */

const TYPING_SHOW_MS = 3500;
const DROP_OFFLINE_MS = 5000;
const MAX_ITEMS = 500;

/** @param {string} id */
const el = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));

/** @type {WsgateClient | null} */
let client = null;
let me = '';
/** @type {Map<string, Conversation>} */
const convs = new Map();
/** @type {Conversation | null} */
let current = null;
/** Message ids the recipient acked before our reply arrived. @type {Set<string>} */
const receipted = new Set();
let nextLocalId = 1;
/** @type {ReturnType<typeof setInterval> | undefined} */
let countdownTimer;
let loginMode = /** @type {'name' | 'token'} */ ('name');

// ---- login -----------------------------------------------------------------

function setupLogin() {
  const saved = localStorage.getItem('wsgate-demo-name');
  if (saved) input('name').value = saved;
  if (localStorage.getItem('wsgate-demo-mode') === 'token') setLoginMode('token');
  for (const tab of document.querySelectorAll('.tab')) {
    tab.addEventListener('click', () => setLoginMode(/** @type {any} */ (tab).dataset.mode));
  }
  el('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const room = input('first-room').value.trim();
    if (loginMode === 'name') {
      const name = input('name').value.trim();
      if (!validName(name)) return showLoginError('Pick a name of 1–128 letters, digits or _ . : @ -');
      localStorage.setItem('wsgate-demo-name', name);
      start({ user: name, room });
    } else {
      const token = /** @type {HTMLTextAreaElement} */ (el('token')).value.trim();
      if (!token) return showLoginError('Paste a token first.');
      start({ token, room });
    }
  });
  el('sign-out').addEventListener('click', () => signOut());
  el('retry-now').addEventListener('click', () => client?.reconnectNow());
  el('drop-network').addEventListener('click', () => {
    if (client?.dropConnection(DROP_OFFLINE_MS)) toast(`Network dropped: offline for ${DROP_OFFLINE_MS / 1000} s. Messages sent meanwhile come back when it reconnects.`);
  });
}

/** @param {'name' | 'token'} mode */
function setLoginMode(mode) {
  loginMode = mode;
  localStorage.setItem('wsgate-demo-mode', mode);
  el('tab-name').setAttribute('aria-selected', String(mode === 'name'));
  el('tab-token').setAttribute('aria-selected', String(mode === 'token'));
  el('field-name').hidden = mode !== 'name';
  el('field-token').hidden = mode !== 'token';
}

/** @param {string} text */
function showLoginError(text) {
  const box = el('login-error');
  box.textContent = text;
  box.hidden = false;
}

/** @param {string} name */
function validName(name) {
  return /^[A-Za-z0-9_.:@-]{1,128}$/.test(name);
}

/** @param {{ user?: string, token?: string, room: string }} how */
function start(how) {
  el('login-error').hidden = true;
  el('connect').setAttribute('disabled', '');
  const c = new WsgateClient({ user: how.user, token: how.token });
  client = c;
  c.on('state', onState);
  c.on('welcome', (w) => {
    me = w.user;
    el('me-name').textContent = me;
    el('me').hidden = false;
    el('login').hidden = true;
    el('chat').hidden = false;
    el('connect').removeAttribute('disabled');
  });
  c.on('message', onMessage);
  c.on('presence', (p) => {
    const conv = convs.get(`room:${p.room}`);
    if (!conv) return;
    if (p.event === 'join') conv.members.add(p.user);
    else conv.members.delete(p.user);
    if (conv === current) renderMembers();
  });
  c.on('typing', (t) => {
    const conv = t.room ? convs.get(`room:${t.room}`) : conversation('dm', t.from);
    if (!conv || t.from === me) return;
    conv.typing.set(t.from, Date.now() + TYPING_SHOW_MS);
    if (conv === current) renderTyping();
    setTimeout(() => conv === current && renderTyping(), TYPING_SHOW_MS + 50);
  });
  c.on('receipt', (r) => {
    receipted.add(r.id);
    for (const conv of convs.values()) {
      const item = conv.items.find((i) => i.id === r.id);
      if (item) {
        item.status = 'delivered';
        if (conv === current) renderMessages();
      }
    }
  });
  c.on('joined', ({ room, members }) => {
    const conv = conversation('room', room);
    conv.members = new Set(members);
    renderLists();
    if (conv === current) renderMembers();
  });
  c.on('recovered', ({ room, since, offset }) => {
    const missed = (offset ?? 0) - (since ?? 0);
    toast(missed > 0 ? `#${room}: recovered ${missed} missed message${missed === 1 ? '' : 's'}.` : `#${room}: back, nothing missed.`);
  });
  c.on('notRecovered', ({ room, reason }) => {
    if (reason === 'unsupported' || reason === 'no_position') return; // nothing to recover from
    toast(`#${room}: messages sent while you were away are no longer kept (${reason === 'epoch_changed' ? 'history reset' : 'too long away'}).`);
  });
  c.on('error', (e) => toast(`${e.code}: ${e.message}`));
  c.on('queue_overflow', () => toast('Offline queue full: message not sent.'));
  c.connect().then(
    () => {
      if (how.room && validName(how.room)) joinRoom(how.room);
    },
    () => {}, // reported through the state change
  );
}

function signOut() {
  client?.close('signed out');
  client = null;
  convs.clear();
  current = null;
  el('chat').hidden = true;
  el('me').hidden = true;
  el('login').hidden = false;
  el('connect').removeAttribute('disabled');
  setStatus('idle', 'Not connected');
}

// ---- connection state ------------------------------------------------------

/** @param {StateChange} s */
function onState(s) {
  clearInterval(countdownTimer);
  el('retry-now').hidden = true;
  switch (s.state) {
    case 'connecting':
      setStatus('connecting', s.attempt ? `Connecting… (attempt ${s.attempt + 1})` : 'Connecting…');
      break;
    case 'open':
      setStatus('open', `Connected · node ${client?.welcome?.node ?? '?'}`);
      break;
    case 'reconnecting': {
      if (!s.everOpened) {
        // Never got in: a refused upgrade (401 without a valid token when
        // anonymous mode is off, 403 origin, 503 full) looks the same to a
        // browser. Stop here and say so, rather than retrying forever.
        client?.close('giving up');
        client = null;
        el('connect').removeAttribute('disabled');
        setStatus('closed', 'Not connected');
        if (loginMode === 'name') {
          showLoginError(
            'Could not connect. The server refused the connection or is unreachable. ' +
              'If it does not allow anonymous users, sign in with a token instead.',
          );
          // Most likely anonymous mode is off: ask for a token (also next time).
          setLoginMode('token');
          el('token').focus();
        } else {
          showLoginError('Could not connect. The server refused the token (invalid or expired) or is unreachable.');
        }
        return;
      }
      const retryAt = s.retryAt ?? Date.now();
      const tick = () => {
        const left = Math.max(0, retryAt - Date.now()) / 1000;
        setStatus('reconnecting', `Connection lost (${s.code}). Reconnecting in ${left.toFixed(1)} s…`);
      };
      tick();
      countdownTimer = setInterval(tick, 200);
      el('retry-now').hidden = false;
      break;
    }
    case 'closed':
      if (s.error?.code === 'auth') {
        signOut();
        showLoginError(`The server refused the token: ${s.reason ?? ''}. Paste a fresh one.`);
      } else {
        setStatus('closed', 'Disconnected');
      }
      break;
    default:
      setStatus('idle', 'Not connected');
  }
}

/** @param {string} state @param {string} text */
function setStatus(state, text) {
  el('status').dataset.state = state;
  el('status-text').textContent = text;
}

// ---- conversations ---------------------------------------------------------

/** @param {'room' | 'dm' | 'broadcast'} kind @param {string} name */
function conversation(kind, name) {
  const key = `${kind}:${name}`;
  let conv = convs.get(key);
  if (!conv) {
    conv = { key, kind, name, items: [], unread: 0, members: new Set(), typing: new Map() };
    convs.set(key, conv);
    renderLists();
  }
  return conv;
}

/** @param {Conversation} conv */
function select(conv) {
  current = conv;
  conv.unread = 0;
  renderLists();
  const title = conv.kind === 'room' ? `# ${conv.name}` : conv.kind === 'dm' ? `@ ${conv.name}` : 'Broadcasts';
  el('conv-title').textContent = title;
  el('leave-room').hidden = conv.kind !== 'room';
  input('text').disabled = conv.kind === 'broadcast';
  input('text').placeholder = conv.kind === 'dm' ? `Message ${conv.name}…` : `Message #${conv.name}…`;
  renderSub();
  renderMessages();
  renderTyping();
  renderMembers();
  if (conv.kind === 'dm' && client) {
    client.presence({ user: conv.name }).then(
      (p) => {
        conv.presence = p.online ? `online · ${p.connections} connection${p.connections === 1 ? '' : 's'}` : 'offline · messages wait in their inbox';
        if (conv === current) renderMembers();
      },
      () => {},
    );
  }
  input('text').focus();
}

function renderSub() {
  if (!current) return;
  el('conv-sub').textContent =
    current.kind === 'room'
      ? `${current.members.size} member${current.members.size === 1 ? '' : 's'}`
      : current.kind === 'dm'
        ? current.presence ?? 'direct message'
        : 'messages to everyone';
}

/** @param {string} room */
async function joinRoom(room) {
  if (!client) return;
  try {
    await client.join(room);
    select(conversation('room', room));
  } catch (err) {
    toast(`Could not join ${room}: ${/** @type {WsgateError} */ (err).message}`);
  }
}

/** @param {Message} m */
function onMessage(m) {
  const text = typeof m.content?.text === 'string' ? m.content.text : JSON.stringify(m.content);
  /** @type {Conversation} */
  let conv;
  if (m.kind === 'room' && m.room) conv = conversation('room', m.room);
  else if (m.kind === 'direct') conv = conversation('dm', m.from === me && m.to ? m.to : m.from);
  else conv = conversation('broadcast', 'broadcast');
  if (conv.items.some((i) => i.id === m.id)) return; // our own message, already shown
  conv.typing.delete(m.from);
  const mine = m.from === me;
  const pending = mine ? conv.items.find((i) => i.mine && !i.id && i.text === text) : undefined;
  if (pending) {
    pending.id = m.id;
    pending.status = 'sent';
  } else {
    conv.items.push({ id: m.id, from: m.from, text, time: m.time || Date.now(), mine, replay: m.replay });
    if (conv.items.length > MAX_ITEMS) conv.items.splice(0, conv.items.length - MAX_ITEMS);
  }
  if (conv === current) {
    renderMessages();
    renderTyping();
  } else {
    conv.unread += 1;
    renderLists();
  }
}

/** @param {string} text */
async function sendText(text) {
  const conv = current;
  if (!client || !conv || conv.kind === 'broadcast') return;
  /** @type {Item} */
  const item = {
    localId: nextLocalId++,
    from: me,
    text,
    time: Date.now(),
    mine: true,
    status: client.state === 'open' ? 'sending' : 'queued (offline)',
  };
  conv.items.push(item);
  renderMessages();
  try {
    const reply =
      conv.kind === 'room'
        ? await client.publish(conv.name, { text })
        : await client.send(conv.name, { text });
    if (conv.items.some((i) => i !== item && i.id === reply.id)) {
      conv.items.splice(conv.items.indexOf(item), 1); // the echo came first
    } else {
      item.id = reply.id;
      item.status =
        receipted.has(reply.id) ? 'delivered'
        : conv.kind === 'dm' ? (/** @type {any} */ (reply).online ? 'sent' : 'stored until they connect')
        : 'sent';
    }
  } catch (err) {
    const e = /** @type {WsgateError} */ (err);
    item.status = `not sent: ${e.code}${e.retry_after_ms ? ` (retry in ${e.retry_after_ms} ms)` : ''}`;
  }
  if (conv === current) renderMessages();
}

// ---- rendering ---------------------------------------------------------------

function renderLists() {
  /** @param {HTMLElement} list @param {Conversation[]} items */
  const fill = (list, items) => {
    list.replaceChildren(
      ...items.map((conv) => {
        const li = document.createElement('li');
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'conv' + (conv === current ? ' active' : '');
        button.dataset.key = conv.key;
        button.textContent = conv.kind === 'room' ? `# ${conv.name}` : conv.kind === 'dm' ? `@ ${conv.name}` : '📣 Broadcasts';
        if (conv.unread > 0) {
          const badge = document.createElement('span');
          badge.className = 'badge';
          badge.textContent = String(conv.unread);
          button.append(badge);
        }
        button.addEventListener('click', () => select(conv));
        li.append(button);
        return li;
      }),
    );
  };
  const all = [...convs.values()];
  fill(el('room-list'), all.filter((c) => c.kind === 'room'));
  fill(el('dm-list'), all.filter((c) => c.kind !== 'room'));
}

function renderMessages() {
  const list = el('messages');
  if (!current) {
    list.replaceChildren();
    return;
  }
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  if (current.items.length === 0) {
    const empty = document.createElement('li');
    empty.className = 'empty';
    empty.textContent = current.kind === 'dm' ? `No messages with ${current.name} yet.` : 'No messages yet. Say hello!';
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(
    ...current.items.map((item) => {
      const li = document.createElement('li');
      li.className = 'msg' + (item.mine ? ' mine' : '') + (item.replay ? ' replayed' : '');
      if (item.id) li.dataset.id = item.id;
      const meta = document.createElement('div');
      meta.className = 'meta';
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = item.mine ? 'you' : item.from;
      const when = document.createElement('time');
      when.textContent = new Date(item.time).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      meta.append(who, when);
      if (item.replay) {
        const tag = document.createElement('span');
        tag.className = 'tag';
        tag.textContent = 'replayed · sent while you were away';
        meta.append(tag);
      }
      const body = document.createElement('div');
      body.className = 'text';
      body.textContent = item.text;
      li.append(meta, body);
      if (item.status) {
        const status = document.createElement('div');
        status.className = 'delivery';
        status.textContent = item.status;
        li.append(status);
      }
      return li;
    }),
  );
  if (atBottom || current.items.at(-1)?.mine) list.scrollTop = list.scrollHeight;
}

function renderTyping() {
  const box = el('typing');
  if (!current) {
    box.textContent = '';
    return;
  }
  const now = Date.now();
  const who = [...current.typing].filter(([, until]) => until > now).map(([user]) => user);
  box.textContent =
    who.length === 0 ? '' : who.length === 1 ? `${who[0]} is typing…` : `${who.slice(0, 3).join(', ')} are typing…`;
}

function renderMembers() {
  const list = el('member-list');
  const members = current?.kind === 'room' ? [...current.members].sort() : current?.kind === 'dm' ? [me, current.name] : [];
  el('member-count').textContent = members.length ? String(members.length) : '';
  list.replaceChildren(
    ...members.map((user) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'member' + (current?.kind === 'dm' && user !== me && current.presence?.startsWith('offline') ? ' offline' : '');
      button.title = user === me ? 'you' : `Message ${user}`;
      button.textContent = user === me ? `${user} (you)` : user;
      button.disabled = user === me;
      button.addEventListener('click', () => select(conversation('dm', user)));
      li.append(button);
      return li;
    }),
  );
  renderSub();
}

/** @param {string} text */
function toast(text) {
  const t = document.createElement('div');
  t.className = 'toast';
  t.textContent = text;
  el('toasts').append(t);
  setTimeout(() => t.remove(), 5000);
}

// ---- wiring ----------------------------------------------------------------

function setupChat() {
  el('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input('text').value.trim();
    if (!text) return;
    input('text').value = '';
    void sendText(text);
  });
  input('text').addEventListener('input', () => {
    if (!client || !current || !input('text').value) return;
    if (current.kind === 'room') client.typing({ room: current.name });
    else if (current.kind === 'dm') client.typing({ to: current.name });
  });
  el('join-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const room = input('join-room').value.trim();
    if (!validName(room)) return;
    input('join-room').value = '';
    void joinRoom(room);
  });
  el('dm-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const user = input('dm-user').value.trim();
    if (!validName(user)) return;
    input('dm-user').value = '';
    select(conversation('dm', user));
  });
  el('leave-room').addEventListener('click', async () => {
    const conv = current;
    if (!client || !conv || conv.kind !== 'room') return;
    try {
      await client.leave(conv.name);
    } catch (err) {
      toast(`Could not leave: ${/** @type {WsgateError} */ (err).message}`);
      return;
    }
    convs.delete(conv.key);
    current = null;
    const next = [...convs.values()][0];
    if (next) select(next);
    else {
      renderLists();
      renderMessages();
      renderMembers();
      el('conv-title').textContent = 'Join a room or open a conversation';
      el('conv-sub').textContent = '';
    }
  });
}

setupLogin();
setupChat();
