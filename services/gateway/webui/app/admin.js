// Admin: users, tokens (everyone manages their own), the audit log.
import { useState } from '../vendor/preact-htm.js';
import * as api from './api.js';
import { html, useLoad, Loading, Act, Pager, CopyBlock, confirm, toast, fail, when, href, me } from './ui.js';

const enc = encodeURIComponent;

export function AdminPage({ tab }) {
  if (!me.auth) {
    return html`<h1>Admin</h1><p class="notice">Auth is off (MLPANEL_AUTH=false): there are no users or tokens, and anyone who reaches the gateway may do anything. Turn it on for a team server; mutating calls are audited either way.</p><${Audit}/>`;
  }
  if (!me.admin) return html`<h1>Your tokens</h1><${Tokens} user=${me.name}/>`;
  const t = tab || 'users';
  const tabs = [['users', 'Users'], ['tokens', 'Tokens'], ['audit', 'Audit log']];
  return html`<h1>Admin</h1>
    <nav class="tabs" aria-label="Admin">${tabs.map(([k, l]) => html`<a href=${href('admin', k)} aria-current=${t === k ? 'page' : undefined}>${l}</a>`)}</nav>
    ${t === 'users' && html`<${Users}/>`}${t === 'tokens' && html`<${TokensFor}/>`}${t === 'audit' && html`<${Audit}/>`}`;
}

function Users() {
  const [state, reload] = useLoad(() => api.list('/users', { _sort: 'name', _order: 'ASC' }), []);
  const [name, setName] = useState('');
  const [admin, setAdmin] = useState(false);
  const add = async (e) => {
    e.preventDefault();
    try { await api.post('/users', { name, admin }); toast(`User ${name} created: give them a token under Tokens`); setName(''); setAdmin(false); reload(); } catch (err) { fail(err); }
  };
  return html`<form class="card inline" onSubmit=${add} aria-label="Create a user">
      <label>Name<input required value=${name} onInput=${(e) => setName(e.target.value)} data-testid="new-user"/></label>
      <label class="row"><input type="checkbox" checked=${admin} onChange=${(e) => setAdmin(e.target.checked)}/>admin</label>
      <button class="primary" type="submit" data-testid="create-user">Create user</button></form>
    <${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="users"><thead><tr><th>Name</th><th>Admin</th><th>Created</th><th></th></tr></thead><tbody>
      ${state.data.items.map((u) => html`<tr key=${u.name} data-user=${u.name}><td>${u.name}</td><td>${u.admin ? 'yes' : ''}</td><td>${when(u.createdAt)}</td>
        <td>${u.name !== me.name && html`<${Act} cls="danger" run=${async () => { if (await confirm(`Delete user ${u.name}?`, `Their tokens stop working and their memberships go.`, { action: `Delete ${u.name}` })) { await api.del(`/users/${enc(u.name)}`); reload(); } }}>Delete<//>`}</td></tr>`)}
    </tbody></table></div>`}<//>`;
}

function TokensFor() {
  const [user, setUser] = useState(me.name);
  const [users] = useLoad(() => api.list('/users', { _sort: 'name', _order: 'ASC' }), []);
  return html`<label class="row" style="margin-bottom:1rem">User <select value=${user} onChange=${(e) => setUser(e.target.value)} data-testid="token-user">
      ${(users.data ? users.data.items : [{ name: me.name }]).map((u) => html`<option value=${u.name}>${u.name}</option>`)}</select></label>
    <${Tokens} key=${user} user=${user}/>`;
}

function Tokens({ user }) {
  const [state, reload] = useLoad(() => api.get(`/users/${enc(user)}/tokens`), [user]);
  const [name, setName] = useState('');
  const [secret, setSecret] = useState(null);
  const add = async (e) => {
    e.preventDefault();
    try { const t = await api.post(`/users/${enc(user)}/tokens`, { name }); setSecret(t.token); setName(''); reload(); } catch (err) { fail(err); }
  };
  return html`<form class="card inline" onSubmit=${add} aria-label="Create a token">
      <label>Token name<input required value=${name} onInput=${(e) => setName(e.target.value)} placeholder="laptop" data-testid="new-token"/></label>
      <button class="primary" type="submit" data-testid="create-token">Create token for ${user}</button></form>
    ${secret && html`<div class="notice" data-testid="secret"><p><b>The new token, shown this once:</b></p><${CopyBlock} text=${secret} label="new token"/></div>`}
    <${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="tokens"><thead><tr><th>Name</th><th>Id</th><th>Created</th><th></th></tr></thead><tbody>
      ${state.data.map((t) => html`<tr key=${t.id} data-token=${t.name}><td>${t.name}</td><td class="mono small">${t.id}</td><td>${when(t.createdAt)}</td>
        <td><${Act} cls="danger" testid="revoke" run=${async () => { if (await confirm(`Revoke token ${t.name}?`, 'Anything using it gets 401 from now on.', { action: 'Revoke' })) { await api.del(`/users/${enc(user)}/tokens/${enc(t.id)}`); reload(); } }}>Revoke<//></td></tr>`)}
      ${state.data.length === 0 && html`<tr><td colspan="4" class="muted">No tokens.</td></tr>`}
    </tbody></table></div>`}<//>`;
}

const AUDIT_PAGE = 50;

function Audit() {
  const [f, setF] = useState({ user: '', project_id: '', since: '', until: '' });
  const [applied, setApplied] = useState(f);
  const [start, setStart] = useState(0);
  const iso = (v) => (v ? new Date(v).toISOString() : '');
  const [state] = useLoad(() => api.list('/audit', { user: applied.user, project_id: applied.project_id, since: iso(applied.since), until: iso(applied.until), _start: start, _end: start + AUDIT_PAGE }),
    [applied, start]);
  const field = (k, label, type = 'text') => html`<label>${label}<input type=${type} value=${f[k]} onInput=${(e) => setF({ ...f, [k]: e.target.value })} data-testid=${'audit-' + k}/></label>`;
  return html`<h2>Audit log</h2>
    <form class="card inline" onSubmit=${(e) => { e.preventDefault(); setStart(0); setApplied(f); }} aria-label="Filter the audit log">
      ${field('user', 'User')}${field('project_id', 'Project id')}${field('since', 'Since', 'datetime-local')}${field('until', 'Until', 'datetime-local')}
      <button type="submit" data-testid="audit-filter">Filter</button></form>
    <${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="audit"><thead><tr><th>Time</th><th>User</th><th>Call</th><th>Status</th><th class="hide-sm">Project</th><th class="hide-sm">Request</th></tr></thead><tbody>
      ${state.data.items.map((a) => html`<tr key=${a.id}><td>${when(a.time)}</td><td>${a.user || '—'}</td><td class="mono small">${a.method} ${a.path}</td><td>${a.status}</td><td class="hide-sm">${a.project_id || ''}</td><td class="hide-sm mono small">${a.request_id}</td></tr>`)}
      ${state.data.items.length === 0 && html`<tr><td colspan="6" class="muted">Nothing recorded${applied.user || applied.project_id ? ' for this filter' : ''}.</td></tr>`}
    </tbody></table></div><${Pager} start=${start} size=${AUDIT_PAGE} total=${state.data.total} setStart=${setStart}/>`}<//>`;
}
