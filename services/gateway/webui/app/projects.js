// Projects: the table of tracking servers, live through GET /events.
import { useState, useEffect } from '../vendor/preact-htm.js';
import * as api from './api.js';
import { html, useLoad, Loading, Status, Act, CopyBlock, SortTh, Pager, ErrorBox, confirm, toast, when, href, bytes, me, roleOn, may } from './ui.js';

const PAGE = 25;
const COLS = 8;

export function ProjectsPage() {
  const [sort, setSort] = useState({ col: 'name', order: 'ASC' });
  const [start, setStart] = useState(0);
  const [state, reload] = useLoad(
    () => api.list('/projects', { _start: start, _end: start + PAGE, _sort: sort.col, _order: sort.order }),
    [sort.col, sort.order, start],
  );
  const [roles, setRoles] = useState({});
  const [open, setOpen] = useState('');

  // Live: an event carries the whole project, so the row is replaced as is.
  useEffect(() => api.onEvent((ev) => {
    if (!ev.type.startsWith('io.mlpanel.project.')) return;
    const change = ev.type.slice('io.mlpanel.project.'.length);
    if (change === 'created' || change === 'deleted') { reload(); return; }
    setRowsFrom(ev.data);
  }), [reload]);
  const [rows, setRows] = useState(null);
  useEffect(() => { if (state.data) setRows(state.data.items); }, [state.data]);
  const setRowsFrom = (p) => setRows((rs) => rs && rs.map((r) => (r.id === p.id ? { ...r, ...p } : r)));

  useEffect(() => {
    if (!rows) return;
    for (const p of rows) {
      if (roles[p.id] === undefined) roleOn(p.id).then((r) => setRoles((x) => ({ ...x, [p.id]: r })));
    }
  }, [rows]);

  return html`<h1>Projects</h1>
    <${CreateProject} onCreated=${reload}/>
    <${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="projects">
      <thead><tr>
        <${SortTh} col="name" label="Name" sort=${sort} setSort=${setSort}/>
        <${SortTh} col="status" label="Status" sort=${sort} setSort=${setSort}/>
        <th class="hide-sm">Address</th><th class="hide-sm">MLflow</th>
        <th class="num">Runs</th><th class="num hide-sm" title="Proportional set size of the server's processes (GET /projects/{id}/stats)">Memory</th>
        <${SortTh} col="updatedAt" label="Last change" sort=${sort} setSort=${setSort} cls="hide-sm"/>
        <th>Actions</th>
      </tr></thead>
      <tbody>${(rows || []).map((p) => html`<${ProjectRow} key=${p.id} p=${p} role=${roles[p.id] || ''} open=${open === p.id}
          toggle=${() => setOpen(open === p.id ? '' : p.id)} onChanged=${(np) => (np ? setRowsFrom(np) : reload())}/>`)}
        ${rows && rows.length === 0 && html`<tr><td colspan=${COLS} class="muted">No projects yet: create one above.</td></tr>`}
      </tbody></table></div>
      <${Pager} start=${start} size=${PAGE} total=${state.data.total} setStart=${setStart}/>`}<//>`;
}

function CreateProject({ onCreated }) {
  const [name, setName] = useState('');
  const [desc, setDesc] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      await api.post('/projects', { name, description: desc });
      toast(`Project ${name} created`);
      setName(''); setDesc(''); setError(null);
      onCreated();
    } catch (err) { setError(err); }
  };
  return html`<form class="card inline" onSubmit=${submit} aria-label="Create a project">
    <label>Name<input required value=${name} onInput=${(e) => setName(e.target.value)} placeholder="churn-model" data-testid="new-project-name"/></label>
    <label style="flex:1">Description<input value=${desc} onInput=${(e) => setDesc(e.target.value)}/></label>
    <button class="primary" type="submit" data-testid="create-project">Create project</button>
    ${error && html`<div class="error" role="alert" style="flex-basis:100%">${error.message}</div>`}
  </form>`;
}

// useFacts reads what the list does not carry: the MLflow version
// (GET /projects/{id}), the memory of the server (GET /projects/{id}/stats)
// and the active runs (the experiments' run counts, a count in MLflow's
// database). Counts are asked of running projects only: asking a
// sleeping one would wake it.
function useFacts(p) {
  const [f, setF] = useState({});
  useEffect(() => {
    let stop = false;
    api.get(`/projects/${p.id}`).then((d) => !stop && setF((x) => ({ ...x, version: d.mlflowVersion || '' })), () => {});
    return () => { stop = true; };
  }, [p.id]);
  useEffect(() => {
    let stop = false;
    if (p.status !== 'running') { setF((x) => ({ ...x, pss: null, runs: null })); return undefined; }
    api.get(`/projects/${p.id}/stats`).then((st) => !stop && setF((x) => ({ ...x, pss: st.pssBytes })), () => {});
    api.list('/experiments', { project_id: p.id, _start: 0, _end: 1000 }).then(({ items, total }) => !stop && setF((x) => ({
      ...x, runs: items.reduce((n, e) => n + (e.run_count || 0), 0), more: total > items.length,
    })), () => {});
    return () => { stop = true; };
  }, [p.id, p.status, p.updatedAt]);
  return f;
}

function ProjectRow({ p, role, open, toggle, onChanged }) {
  const own = may(role, 'owner');
  const facts = useFacts(p);
  const [renaming, setRenaming] = useState(false);
  const act = (what, path) => async () => {
    const np = await api.put(`/projects/${p.id}/${path}`);
    toast(`${p.name}: ${what}`);
    onChanged(np);
  };
  const ask = (verb, path, body) => async () => {
    if (await confirm(`${verb} project ${p.name}?`, body, { action: `${verb} ${p.name}` })) await act(verb.toLowerCase(), path)();
  };
  const remove = async () => {
    const ok = await confirm(`Delete project ${p.name}?`,
      `This removes the project ${p.name}, its tracking database and all its artifacts. It cannot be undone.`,
      { action: `Delete ${p.name}`, typeName: p.name });
    if (!ok) return;
    await api.del(`/projects/${p.id}`);
    toast(`Project ${p.name} deleted`);
    onChanged(null);
  };
  const running = p.status === 'running' || p.status === 'starting';
  const dash = html`<span class="muted">—</span>`;
  return html`<tr data-project=${p.name}>
      <td class="name">${renaming
        ? html`<${Rename} p=${p} done=${(np) => { setRenaming(false); if (np) onChanged(np); }}/>`
        : html`<a href=${href('projects', p.id)} title=${p.name}>${p.name}</a>${p.description ? html`<div class="small muted clip" title=${p.description}>${p.description}</div>` : ''}`}</td>
      <td><${Status} value=${p.status}/>${p.restartCount ? html` <span class="small muted" title="crashes in a row">↻${p.restartCount}</span>` : ''}
        ${p.lastError && p.status === 'failed' ? html`<div class="small error clip" title=${p.lastError}>${p.lastError}</div>` : ''}</td>
      <td class="hide-sm mono small clip" title=${p.mlflowUri} data-testid="address">${p.mlflowUri || dash}</td>
      <td class="hide-sm" data-testid="mlflow-version">${facts.version || dash}</td>
      <td class="num" data-testid="runs">${facts.runs == null ? dash : facts.runs + (facts.more ? '+' : '')}</td>
      <td class="num hide-sm" data-testid="memory">${facts.pss ? bytes(facts.pss) : dash}</td>
      <td class="hide-sm">${when(p.updatedAt)}</td>
      <td><div class="actions">
        ${own && !running && p.status !== 'archived' && html`<${Act} run=${act('run', 'run')} testid="run">Run<//>`}
        ${own && running && html`<${Act} run=${ask('Terminate', 'terminate', `The MLflow server of ${p.name} stops; its data stays.`)} testid="terminate">Terminate<//>`}
        ${own && !running && p.status !== 'archived' && html`<${Act} run=${ask('Archive', 'archive', `${p.name} is archived: read-only and not startable until restored.`)} testid="archive">Archive<//>`}
        ${own && p.status === 'archived' && html`<${Act} run=${act('restored', 'restore')} testid="restore">Restore<//>`}
        ${own && !renaming && html`<button onClick=${() => setRenaming(true)} data-testid="rename">Rename</button>`}
        ${own && html`<${Act} cls="danger" run=${remove} testid="delete">Delete<//>`}
        <button onClick=${toggle} aria-expanded=${open} data-testid="details">${open ? 'Hide' : 'Details'}</button>
      </div></td>
    </tr>
    ${open && html`<tr><td colspan=${COLS} class="wrap"><div class="details"><${ProjectDetails} p=${p}/></div></td></tr>`}`;
}

// Rename edits the name in place (PUT /projects/{id} with name); the
// panel's refusal (taken, or not a valid name) shows under the field.
function Rename({ p, done }) {
  const [name, setName] = useState(p.name);
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    if (name === p.name) { done(null); return; }
    try {
      const np = await api.put(`/projects/${p.id}`, { name });
      toast(`${p.name} is now ${np.name}`);
      done(np);
    } catch (err) { setError(err); }
  };
  return html`<form class="rename" onSubmit=${save} onKeyDown=${(e) => e.key === 'Escape' && done(null)} aria-label=${'Rename ' + p.name}>
    <div class="row"><input autofocus required value=${name} onInput=${(e) => setName(e.target.value)} aria-label="new name" data-testid="rename-input" size="16"/>
      <button class="primary" type="submit" data-testid="rename-save">Save</button><button type="button" onClick=${() => done(null)}>Cancel</button></div>
    <${ErrorBox} error=${error}/>
  </form>`;
}

// The tracking URI to paste into a shell, and the log tail.
export function ProjectDetails({ p }) {
  const uri = p.mlflowUri || `${location.origin}/projects/${p.name}/mlflow`;
  const lines = [`export MLFLOW_TRACKING_URI=${uri}`];
  if (me.auth) lines.push('export MLFLOW_TRACKING_TOKEN=<your mlpanel API token>');
  return html`<div class="grid2">
    <div>
      <h2>Use it from Python</h2>
      <${CopyBlock} text=${lines.join('\n')} label="MLFLOW_TRACKING_URI"/>
      <p class="small"><a href=${`/projects/${encodeURIComponent(p.name)}/mlflow/`} target="_blank" rel="noopener">Open the MLflow UI of ${p.name}</a>
        ${me.auth ? html` <span class="muted">(through the gateway, signed in with this panel's session)</span>` : ''}</p>
    </div>
    <div><h2>Log</h2><${LogTail} path=${`/projects/${p.id}/logs`}/></div>
  </div>`;
}

// LogTail polls the last lines of a log while it is on screen.
export function LogTail({ path }) {
  const [log, setLog] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stop = false;
    const tick = async () => {
      try { const r = await api.get(path, { lines: 200 }); if (!stop) { setLog(r.log || ''); setError(null); } } catch (e) { if (!stop) setError(e); }
      if (!stop) setTimeout(tick, 3000);
    };
    tick();
    return () => { stop = true; };
  }, [path]);
  if (error) return html`<div class="error">${error.message}</div>`;
  return html`<pre class="log" tabindex="0" aria-label="log tail" data-testid="log">${log === null ? 'Loading…' : log || '(empty)'}</pre>`;
}
