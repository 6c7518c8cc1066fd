// mlpanel web panel: Preact + htm as plain ES modules, no build step.
import { render, useState, useEffect } from '../vendor/preact-htm.js';
import * as api from './api.js';
import { html, Toasts, ConfirmDialog, currentRoute, me, loadMe, forgetRoles, ErrorBox } from './ui.js';
import { ProjectsPage } from './projects.js';
import { ProjectPage } from './project.js';
import { DeploymentsPage, DeploymentPage } from './deployments.js';
import { AdminPage } from './admin.js';
import { SearchPage } from './search.js';

function SignIn({ message, onDone }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(message ? { message } : null);
  const submit = async (e) => {
    e.preventDefault();
    api.session.set(token.trim());
    try {
      await loadMe();
      onDone();
    } catch (err) {
      api.session.clear();
      setError(err);
    }
  };
  return html`<main><div class="card signin">
    <h1>Sign in to mlpanel</h1>
    <p class="muted small">Paste an API token (an admin creates one for you under Admin → Tokens, or the first admin token printed at the first start). It is kept in this tab's session storage only and sent as a Bearer header.</p>
    <${ErrorBox} error=${error}/>
    <form onSubmit=${submit} class="row" style="align-items:flex-end">
      <label style="flex:1">API token
        <input type="password" autocomplete="off" autofocus required value=${token} onInput=${(e) => setToken(e.target.value)} name="token" data-testid="token"/></label>
      <button class="primary" type="submit" data-testid="signin">Sign in</button>
    </form>
  </div></main>`;
}

function Live() {
  const [st, setSt] = useState('connecting');
  useEffect(() => api.onStreamState(setSt), []);
  return html`<span class=${'live ' + (st === 'live' ? 'on' : 'off')} title="Live updates from GET /events" data-testid="live">${st === 'live' ? 'live' : st}</span>`;
}

function Shell({ route, onSignOut }) {
  const top = route.parts[0] || 'projects';
  const nav = (name, label) => html`<a href=${'#/' + name} aria-current=${top === name ? 'page' : undefined}>${label}</a>`;
  let page;
  const [a, b] = route.parts;
  if (a === 'projects' && b) page = html`<${ProjectPage} key=${b} id=${b} rest=${route.parts.slice(2)} query=${route.query}/>`;
  else if (a === 'deployments' && b) page = html`<${DeploymentPage} key=${b} id=${b}/>`;
  else if (a === 'deployments') page = html`<${DeploymentsPage}/>`;
  else if (a === 'search') page = html`<${SearchPage} query=${route.query}/>`;
  else if (a === 'admin') page = html`<${AdminPage} tab=${b || ''}/>`;
  else page = html`<${ProjectsPage}/>`;
  return html`<header class="top">
      <a class="brand" href="#/projects">mlpanel</a>
      <nav aria-label="Main">${nav('projects', 'Projects')}${nav('deployments', 'Deployments')}${nav('search', 'Search')}${nav('admin', me.admin ? 'Admin' : 'Tokens')}<a href="/docs">API</a></nav>
      <div class="who"><${Live}/>
        ${me.auth ? html`<span data-testid="me">${me.name}${me.admin ? ' (admin)' : ''}</span><button onClick=${onSignOut}>Sign out</button>` : html`<span class="small">auth off</span>`}
      </div>
    </header>
    <main>${page}</main>`;
}

function App() {
  const [phase, setPhase] = useState('boot'); // boot | signin | in
  const [msg, setMsg] = useState('');
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const on = () => setRoute(currentRoute());
    addEventListener('hashchange', on);
    api.whenUnauthorized((m) => { api.stopEvents(); setMsg(m); setPhase('signin'); });
    loadMe().then(() => setPhase('in'), (e) => { setMsg(api.session.token ? e.message : ''); setPhase('signin'); });
    return () => removeEventListener('hashchange', on);
  }, []);
  useEffect(() => { if (phase === 'in') api.startEvents(); }, [phase]);
  const signOut = () => { api.session.clear(); api.stopEvents(); forgetRoles(); setMsg(''); setPhase('signin'); };
  return html`${phase === 'boot' ? html`<p class="boot">Loading mlpanel…</p>`
    : phase === 'signin' ? html`<${SignIn} message=${msg} onDone=${() => { forgetRoles(); setPhase('in'); }}/>`
    : html`<${Shell} route=${route} onSignOut=${signOut}/>`}
    <${Toasts}/><${ConfirmDialog}/>`;
}

render(html`<${App}/>`, document.getElementById('app'));
