// mlpanel web panel: Preact + htm as plain ES modules, no build step.
import { render, useState, useEffect } from '../vendor/preact-htm.js';
import * as api from './api.js';
import { html, Toasts, ConfirmDialog, currentRoute, me, loadMe, forgetRoles, ErrorBox, fail } from './ui.js';
import { ProjectsPage } from './projects.js';
import { ProjectPage } from './project.js';
import { DeploymentsPage, DeploymentPage } from './deployments.js';
import { AdminPage } from './admin.js';
import { SearchPage } from './search.js';

function SignIn({ message, onDone }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(message ? { message } : null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try {
      await api.session.signIn(token.trim());
      setToken('');
      await loadMe();
      onDone();
    } catch (err) {
      setError(err);
    } finally { setBusy(false); }
  };
  return html`<main><div class="card signin">
    <h1>Sign in to mlpanel</h1>
    <p class="muted small">Paste an API token (an admin creates one for you under Admin → Tokens, or use the first admin token printed at the first start). The gateway trades it for a session cookie that scripts cannot read, valid for 12 hours and for each project's MLflow UI too; the token is not stored in the browser.</p>
    <${ErrorBox} error=${error}/>
    <form onSubmit=${submit} class="row" style="align-items:flex-end">
      <label style="flex:1">API token
        <input type="password" autocomplete="off" autofocus required value=${token} onInput=${(e) => setToken(e.target.value)} name="token" data-testid="token"/></label>
      <button class="primary" type="submit" disabled=${busy} data-testid="signin">Sign in</button>
    </form>
  </div></main>`;
}

function Live() {
  const [st, setSt] = useState('connecting');
  useEffect(() => api.onStreamState(setSt), []);
  return html`<span class=${'live ' + (st === 'live' ? 'on' : 'off')} title="Live updates from GET /events" data-testid="live">${st === 'live' ? 'live' : st}</span>`;
}

// The pages, by the first part of the route (#/<top>/...): one entry each,
// in the order of the main navigation. A new page (its own module) is one
// more entry here. nav may be a function: its label depends on the caller.
const pages = [
  { top: 'projects', nav: 'Projects', page: ([id, ...rest], query) => (id
    ? html`<${ProjectPage} key=${id} id=${id} rest=${rest} query=${query}/>`
    : html`<${ProjectsPage}/>`) },
  { top: 'deployments', nav: 'Deployments', page: ([id]) => (id ? html`<${DeploymentPage} key=${id} id=${id}/>` : html`<${DeploymentsPage}/>`) },
  { top: 'search', nav: 'Search', page: (_, query) => html`<${SearchPage} query=${query}/>` },
  { top: 'admin', nav: () => (me.admin || !me.auth ? 'Admin' : 'Tokens'), page: ([tab]) => html`<${AdminPage} tab=${tab || ''}/>` },
];

function Shell({ route, onSignOut }) {
  const top = route.parts[0] || 'projects';
  const cur = pages.find((p) => p.top === top) || pages[0];
  return html`<header class="top">
      <a class="brand" href="#/projects">mlpanel</a>
      <nav aria-label="Main">${pages.map((p) => html`<a href=${'#/' + p.top} aria-current=${p === cur ? 'page' : undefined}>${typeof p.nav === 'function' ? p.nav() : p.nav}</a>`)}<a href="/docs">API</a></nav>
      <div class="who"><${Live}/>
        ${me.auth ? html`<span data-testid="me">${me.name}${me.admin ? ' (admin)' : ''}</span><button onClick=${onSignOut} data-testid="signout">Sign out</button>` : html`<span class="small">auth off</span>`}
      </div>
    </header>
    <main>${cur.page(cur.top === top ? route.parts.slice(1) : [], route.query)}</main>`;
}

const ENDED = 'Your session has ended (it expired, was signed out elsewhere, or its token was revoked): sign in again.';

function App() {
  const [phase, setPhase] = useState('boot'); // boot | signin | in
  const [msg, setMsg] = useState('');
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const on = () => setRoute(currentRoute());
    addEventListener('hashchange', on);
    // Any 401 means there is no live session: back to the sign-in page,
    // saying why when there was one (its CSRF cookie is still here), and
    // signing out to clear that stale cookie. Several calls failing at
    // once end it once.
    api.whenUnauthorized(() => {
      const had = api.session.hadOne;
      api.stopEvents();
      forgetRoles();
      if (had) api.session.signOut().catch(() => {});
      setMsg(had ? ENDED : '');
      setPhase('signin');
    });
    loadMe().then(() => setPhase('in'), (e) => { if (e.status !== 401) setMsg(e.message); setPhase('signin'); });
    return () => removeEventListener('hashchange', on);
  }, []);
  useEffect(() => { if (phase === 'in') api.startEvents(); }, [phase]);
  const signOut = async () => {
    try { await api.session.signOut(); } catch (e) { fail(e); return; }
    api.stopEvents(); forgetRoles(); setMsg(''); setPhase('signin');
  };
  return html`${phase === 'boot' ? html`<p class="boot">Loading mlpanel…</p>`
    : phase === 'signin' ? html`<${SignIn} key=${msg} message=${msg} onDone=${() => { forgetRoles(); setPhase('in'); }}/>`
    : html`<${Shell} route=${route} onSignOut=${signOut}/>`}
    <${Toasts}/><${ConfirmDialog}/>`;
}

render(html`<${App}/>`, document.getElementById('app'));
