// @ts-check
/**
 * A minimal DOM for react-dom in Node (happy-dom), installed as globals
 * before react-dom is imported, and React's act() environment flag.
 */
import { Window } from 'happy-dom';

const window = new Window({ url: 'http://localhost/' });
const g = /** @type {any} */ (globalThis);
g.window = window;
g.document = window.document;
g.HTMLElement = window.HTMLElement;
g.Node = window.Node;
if (!('navigator' in globalThis)) g.navigator = window.navigator;
g.IS_REACT_ACT_ENVIRONMENT = true;

export { window };
