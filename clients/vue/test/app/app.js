// A small chat on @wsgate/vue, bundled with esbuild for the browser test
// (test/browser.test.js): `?user=NAME&room=ROOM&ws=URL`, anonymous mode. Render functions (no template compiler).
import { createApp, defineComponent, h, ref } from 'vue';
import { createWsgate, useConnection, useRoom } from '../../src/index.js';

const params = new URLSearchParams(location.search);
const user = params.get('user') ?? 'anon';
const roomName = params.get('room') ?? 'lobby';
const url = params.get('ws') ?? undefined; // default: /ws on this page's origin

const Connection = defineComponent(() => {
  const { status, retryInMs, reconnectNow } = useConnection();
  return () =>
    h('p', { id: 'conn', 'data-status': status.value }, [
      status.value,
      status.value === 'offline' && retryInMs.value !== undefined
        ? [` · retrying in ${Math.ceil(retryInMs.value / 1000)} s `, h('button', { onClick: reconnectNow }, 'Retry now')]
        : null,
    ]);
});

const Room = defineComponent(() => {
  const { status, messages, members, typing, publish, sendTyping } = useRoom(roomName);
  const draft = ref('');
  const submit = (/** @type {Event} */ event) => {
    event.preventDefault();
    if (!draft.value) return;
    publish({ text: draft.value }).catch((err) => console.warn('publish failed', err.code));
    draft.value = '';
  };
  return () =>
    h('section', { id: 'room', 'data-status': status.value }, [
      h('h1', [`#${roomName} `, h('small', status.value)]),
      h('p', { id: 'members' }, members.value.join(', ')),
      h(
        'ol',
        { id: 'messages' },
        messages.value.map((m) =>
          h('li', { key: `${m.epoch}:${m.offset ?? m.id}`, 'data-offset': m.offset, 'data-replay': m.replay ? 'true' : 'false' }, [
            h('b', { class: 'from' }, m.from),
            ' ',
            h('span', { class: 'text' }, m.content?.text ?? ''),
            m.replay ? h('em', ' (replayed)') : null,
          ]),
        ),
      ),
      h('p', { id: 'typing' }, typing.value.length ? `${typing.value.join(', ')} typing…` : ''),
      h('form', { id: 'composer', onSubmit: submit }, [
        h('input', {
          id: 'text',
          value: draft.value,
          onInput: (/** @type {any} */ e) => {
            draft.value = e.target.value;
            sendTyping();
          },
        }),
        h('button', { type: 'submit' }, 'Send'),
      ]),
    ]);
});

createApp({ render: () => [h(Connection), h(Room)] })
  .use(createWsgate({ url, user, reconnectMinMs: 200, reconnectMaxMs: 2000 }))
  .mount('#root');
