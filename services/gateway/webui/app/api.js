// The panel's only way to the server: the public REST API and GET /events.
// With auth on, the browser signs in once (POST /signin) and the gateway
// keeps the session in an HttpOnly cookie: no script on the page can read
// the token or the session, and nothing is kept in web storage. Writes
// carry the sign-in's CSRF token (the mlpanel_csrf cookie, readable by the
// gateway's own pages only: SameSite=Strict).

const CSRF_COOKIE = 'mlpanel_csrf';

function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === CSRF_COOKIE) return decodeURIComponent(v.join('='));
  }
  return '';
}

export const session = {
  // hadOne: a sign-in cookie was set on this browser; a 401 then means the
  // session ended (expired, signed out elsewhere, or its token revoked).
  get hadOne() { return csrfToken() !== ''; },
  // signIn trades an API token for the session cookie; the token itself
  // goes no further than this one request.
  async signIn(token) {
    const r = await fetch('/signin', {
      method: 'POST', credentials: 'same-origin',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (!r.ok) throw await failure(r, false);
    return r.json();
  },
  async signOut() {
    const r = await fetch('/signout', { method: 'POST', credentials: 'same-origin', headers: headers() });
    if (!r.ok) throw await failure(r, false);
  },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  }
  return u;
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const csrf = csrfToken();
  if (csrf) h['X-CSRF-Token'] = csrf;
  return h;
}

async function failure(r, signedIn = true) {
  let msg = `${r.status} ${r.statusText}`;
  try {
    const body = await r.json();
    if (body && body.message) msg = body.message;
  } catch { /* not JSON: keep the status line */ }
  // A 401 to the API: there is no live session (it expired, was signed
  // out or its token revoked), so the panel goes back to its sign-in.
  if (r.status === 401 && signedIn) onUnauthorized(msg);
  return new ApiError(r.status, msg);
}

// request sends one call; it answers the decoded JSON (or the Response
// itself with raw) and throws ApiError with the panel's message.
export async function request(method, path, { query, body, raw } = {}) {
  const init = { method, headers: headers(), credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url(path, query), init);
  if (!r.ok) throw await failure(r);
  if (raw) return r;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, query) => request('GET', path, { query });
export const put = (path, body, query) => request('PUT', path, { body, query });
export const post = (path, body, query) => request('POST', path, { body, query });
export const del = (path, query) => request('DELETE', path, { query });

// list answers one page and the true total (X-Total-Count).
export async function list(path, query) {
  const r = await request('GET', path, { query, raw: true });
  const items = await r.json();
  const total = Number(r.headers.get('X-Total-Count') ?? items.length);
  return { items, total };
}

// blob fetches bytes (artifacts) with the session, for previews and downloads.
export async function blob(path, query) {
  const r = await request('GET', path, { query, raw: true });
  return { blob: await r.blob(), type: r.headers.get('Content-Type') || '' };
}

// Events: one stream for the whole page, shared by every view. fetch, not
// EventSource, so a 401 (session over) is seen as such and Last-Event-ID
// is sent on reconnect, so nothing is missed in between.
const listeners = new Set();
const stateListeners = new Set();
let stream = null;

export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
export function onStreamState(fn) {
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}

export function startEvents() {
  if (stream) return;
  stream = { stopped: false, last: '', ctrl: null };
  const s = stream;
  const setState = (st) => stateListeners.forEach((f) => f(st));
  (async () => {
    while (!s.stopped) {
      s.ctrl = new AbortController();
      try {
        const h = headers({ Accept: 'text/event-stream' });
        if (s.last) h['Last-Event-ID'] = s.last;
        const r = await fetch('/events', { headers: h, signal: s.ctrl.signal, cache: 'no-store', credentials: 'same-origin' });
        if (!r.ok) throw await failure(r);
        setState('live');
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let id = '', data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('id: ')) id = line.slice(4);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (!data) continue;
            if (id) s.last = id;
            let ev;
            try { ev = JSON.parse(data); } catch { continue; }
            listeners.forEach((f) => f(ev));
          }
        }
      } catch (e) {
        if (s.stopped) return;
        if (e instanceof ApiError && e.status === 401) { s.stopped = true; return; }
      }
      setState('reconnecting');
      await new Promise((res) => setTimeout(res, 3000));
    }
  })();
}

export function stopEvents() {
  if (!stream) return;
  stream.stopped = true;
  stream.ctrl?.abort();
  stream = null;
}
