// Shared pieces: routing by URL fragment, toasts, confirmation, tables.
import { html, useState, useEffect, useRef, useCallback } from '../vendor/preact-htm.js';
import * as api from './api.js';

export { html };

// --- routing: #/path?query ---
export function currentRoute() {
  const h = location.hash.replace(/^#/, '') || '/projects';
  const [path, qs] = h.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(qs || '') };
}
export function href(...parts) {
  return '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/');
}
export function go(to) { location.hash = to; }

// --- toasts: every error shows the panel's own message ---
let pushToast = () => {};
export function toast(msg, err = false) { pushToast({ msg, err, id: Math.random() }); }
export function fail(e) { toast(e && e.message ? e.message : String(e), true); }
export function Toasts() {
  const [items, setItems] = useState([]);
  useEffect(() => {
    pushToast = (t) => {
      setItems((xs) => [...xs, t]);
      setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== t.id)), t.err ? 8000 : 3500);
    };
  }, []);
  return html`<div class="toasts" role="status" aria-live="polite">
    ${items.map((t) => html`<div class=${'toast' + (t.err ? ' err' : '')} key=${t.id}>${t.msg}</div>`)}
  </div>`;
}

// --- confirmation: a modal <dialog> (focus and Escape handled by the browser) ---
let openConfirm = () => {};
// confirm asks and resolves true or false. With typeName the user must
// type that name (deleting a project).
export function confirm(title, body, { action = 'Confirm', danger = true, typeName = '' } = {}) {
  return new Promise((resolve) => openConfirm({ title, body, action, danger, typeName, resolve }));
}
export function ConfirmDialog() {
  const [req, setReq] = useState(null);
  const [typed, setTyped] = useState('');
  const ref = useRef();
  useEffect(() => { openConfirm = (r) => { setTyped(''); setReq(r); }; }, []);
  useEffect(() => { if (req && ref.current && !ref.current.open) ref.current.showModal(); }, [req]);
  const close = (ok) => { ref.current?.close(); const r = req; setReq(null); r?.resolve(ok); };
  if (!req) return null;
  const blocked = req.typeName && typed !== req.typeName;
  return html`<dialog ref=${ref} onCancel=${(e) => { e.preventDefault(); close(false); }} aria-labelledby="confirm-title">
    <form method="dialog" onSubmit=${(e) => { e.preventDefault(); if (!blocked) close(true); }}>
      <h2 id="confirm-title">${req.title}</h2>
      <p>${req.body}</p>
      ${req.typeName && html`<label>Type <b>${req.typeName}</b> to confirm
        <input autofocus value=${typed} onInput=${(e) => setTyped(e.target.value)} aria-label="name to confirm" data-testid="confirm-name"/></label>`}
      <div class="row" style="margin-top:1rem;justify-content:flex-end">
        <button type="button" onClick=${() => close(false)}>Cancel</button>
        <button type="submit" class=${req.danger ? 'danger solid' : 'primary'} disabled=${blocked} data-testid="confirm-ok">${req.action}</button>
      </div>
    </form>
  </dialog>`;
}

// --- data loading: a hook that calls load() and reloads on demand ---
export function useLoad(load, deps) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const seq = useRef(0);
  const reload = useCallback(() => {
    const n = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => n === seq.current && setState({ loading: false, data, error: null }),
      (error) => n === seq.current && setState({ loading: false, data: null, error }),
    );
  }, deps);
  useEffect(reload, [reload]);
  return [state, reload, (data) => setState({ loading: false, data, error: null })];
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${error.message || String(error)}</div>`;
}
export function Loading({ state, children }) {
  if (state.error) return html`<${ErrorBox} error=${state.error}/>`;
  if (state.data === null) return html`<p class="muted">Loading…</p>`;
  return children();
}

export function Status({ value }) {
  return html`<span class=${'status ' + (value || '')} data-testid="status">${value || '—'}</span>`;
}

// A button that runs an async action, shows progress and reports errors.
export function Act({ run, children, cls = '', label, testid }) {
  const [busy, setBusy] = useState(false);
  const click = async () => {
    setBusy(true);
    try { await run(); } catch (e) { fail(e); } finally { setBusy(false); }
  };
  return html`<button class=${cls} disabled=${busy} onClick=${click} aria-label=${label} data-testid=${testid}>${busy ? '…' : children}</button>`;
}

export function CopyBlock({ text, label }) {
  const copy = async () => {
    try { await navigator.clipboard.writeText(text); toast('Copied'); } catch { toast('Select the text and copy it (the browser refused clipboard access)', true); }
  };
  return html`<div class="copy"><pre aria-label=${label} tabindex="0">${text}</pre><button onClick=${copy}>Copy</button></div>`;
}

// Sortable header cell.
export function SortTh({ col, label, sort, setSort, cls }) {
  const on = sort.col === col;
  const next = on && sort.order === 'ASC' ? 'DESC' : 'ASC';
  return html`<th class=${cls} aria-sort=${on ? (sort.order === 'ASC' ? 'ascending' : 'descending') : 'none'}>
    <button class="sort" onClick=${() => setSort({ col, order: next })}>${label}${on ? (sort.order === 'ASC' ? ' ▲' : ' ▼') : ''}</button></th>`;
}

export function Pager({ start, size, total, setStart }) {
  if (total <= size) return html`<div class="pager muted">${total} in all</div>`;
  return html`<div class="pager">
    <button disabled=${start === 0} onClick=${() => setStart(Math.max(0, start - size))}>‹ Previous</button>
    <span>${start + 1}–${Math.min(start + size, total)} of ${total}</span>
    <button disabled=${start + size >= total} onClick=${() => setStart(start + size)}>Next ›</button>
  </div>`;
}

export function when(ms) {
  if (!ms) return '—';
  const d = typeof ms === 'number' ? new Date(ms) : new Date(ms);
  if (isNaN(d)) return '—';
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}
export function fmtNum(v) {
  if (typeof v !== 'number') return v ?? '';
  return Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : String(+v.toFixed(4));
}
export function bytes(n) {
  if (n == null) return '';
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

// --- who is calling, and what they may do on a project ---
export const me = { name: '', admin: false, auth: false };
export async function loadMe() { Object.assign(me, await api.get('/me')); return me; }

const roleCache = new Map();
// roleOn is the caller's role on a project, from the project's members
// (its creator first, as owner). Admins and auth-off callers own all.
export async function roleOn(projectId) {
  if (!me.auth || me.admin) return 'owner';
  if (roleCache.has(projectId)) return roleCache.get(projectId);
  const p = (async () => {
    try {
      const ms = await api.get(`/projects/${encodeURIComponent(projectId)}/members`);
      return (ms.find((m) => m.user === me.name) || {}).role || '';
    } catch { return ''; }
  })();
  roleCache.set(projectId, p);
  return p;
}
export function forgetRoles() { roleCache.clear(); names.clear(); }
const rank = { '': 0, viewer: 1, editor: 2, owner: 3 };
export const may = (role, need) => (rank[role] || 0) >= rank[need];
export function useRole(projectId) {
  const [role, setRole] = useState(me.auth && !me.admin ? '' : 'owner');
  useEffect(() => { if (projectId) roleOn(projectId).then(setRole); }, [projectId]);
  return role;
}

// ProjectName shows a project's name where an entity only carries its id
// (deployments); the answer is shared by every place that asks.
const names = new Map();
export function ProjectName({ id }) {
  const [name, setName] = useState('');
  useEffect(() => {
    if (!names.has(id)) names.set(id, api.get(`/projects/${encodeURIComponent(id)}`).then((p) => p.name, () => ''));
    let live = true;
    names.get(id).then((n) => live && setName(n));
    // A rename arrives as the project's event.
    const off = api.onEvent((ev) => {
      if (ev.type.startsWith('io.mlpanel.project.') && ev.data && ev.data.id === id && ev.data.name) {
        names.set(id, Promise.resolve(ev.data.name));
        setName(ev.data.name);
      }
    });
    return () => { live = false; off(); };
  }, [id]);
  return html`<a href=${href('projects', id)}>${name || id}</a>`;
}
