// A small chat on @wsgate/react, bundled with esbuild for the browser test
// (test/browser.test.js): `?user=NAME&room=ROOM&ws=URL`, anonymous mode.
import { useState } from 'react';
import { createRoot } from 'react-dom/client';
import { WsgateProvider, useConnection, useRoom } from '../../src/index.js';

const params = new URLSearchParams(location.search);
const user = params.get('user') ?? 'anon';
const roomName = params.get('room') ?? 'lobby';
const url = params.get('ws') ?? undefined; // default: /ws on this page's origin

function Connection() {
  const { status, retryInMs, reconnectNow } = useConnection();
  return (
    <p id="conn" data-status={status}>
      {status}
      {status === 'offline' && retryInMs !== undefined && <> · retrying in {Math.ceil(retryInMs / 1000)} s <button onClick={reconnectNow}>Retry now</button></>}
    </p>
  );
}

function Room() {
  const { status, messages, members, typing, publish, sendTyping } = useRoom(roomName);
  const [draft, setDraft] = useState('');
  const submit = (event) => {
    event.preventDefault();
    if (!draft) return;
    publish({ text: draft }).catch((err) => console.warn('publish failed', err.code));
    setDraft('');
  };
  return (
    <section id="room" data-status={status}>
      <h1>#{roomName} <small>{status}</small></h1>
      <p id="members">{members.join(', ')}</p>
      <ol id="messages">
        {messages.map((m) => (
          <li key={`${m.epoch}:${m.offset ?? m.id}`} data-offset={m.offset} data-replay={m.replay ? 'true' : 'false'}>
            <b className="from">{m.from}</b> <span className="text">{m.content?.text}</span>{m.replay && <em> (replayed)</em>}
          </li>
        ))}
      </ol>
      <p id="typing">{typing.length > 0 && `${typing.join(', ')} typing…`}</p>
      <form id="composer" onSubmit={submit}>
        <input id="text" value={draft} onChange={(e) => { setDraft(e.target.value); sendTyping(); }} />
        <button type="submit">Send</button>
      </form>
    </section>
  );
}

createRoot(document.getElementById('root')).render(
  <WsgateProvider options={{ url, user, reconnectMinMs: 200, reconnectMaxMs: 2000 }}>
    <Connection />
    <Room />
  </WsgateProvider>,
);
