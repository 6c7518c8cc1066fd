// One project: experiments, runs, run detail with charts and artifacts,
// the model registry, members.
import { useState, useEffect, useMemo } from '../vendor/preact-htm.js';
import * as api from './api.js';
import { html, useLoad, Loading, Status, Act, SortTh, Pager, ErrorBox, confirm, toast, fail, when, fmtNum, bytes, href, go, useRole, may, me } from './ui.js';
import { ProjectDetails } from './projects.js';
import { Chart, history, downsample } from './chart.js';

const enc = encodeURIComponent;

export function ProjectPage({ id, rest, query }) {
  const [state, , setP] = useLoad(() => api.get(`/projects/${enc(id)}`), [id]);
  const role = useRole(id);
  useEffect(() => api.onEvent((ev) => {
    if (ev.type.startsWith('io.mlpanel.project.') && ev.data && ev.data.id === id) setP(ev.data);
  }), [id]);
  const [tab, sub] = rest;
  return html`<${Loading} state=${state}>${() => {
    const p = state.data;
    const tabs = [['', 'Experiments'], ['models', 'Models'], ['deployments', 'Deployments'], ['members', 'Members'], ['server', 'Server']];
    const cur = tab === 'experiments' || tab === 'runs' ? '' : tab || '';
    let body;
    if (p.status !== 'running' && ['', 'experiments', 'runs', 'models'].includes(tab || '')) {
      body = html`<div class="notice">The MLflow server of ${p.name} is ${p.status}: experiments, runs and models are read from it, so run the project first (Projects → Run).</div>`;
    } else if (tab === 'experiments' && sub) body = html`<${Runs} p=${p} expId=${sub} role=${role}/>`;
    else if (tab === 'runs' && sub) body = html`<${RunDetail} p=${p} runId=${sub} compare=${(query.get('compare') || '').split(',').filter(Boolean)}/>`;
    else if (tab === 'models' && sub) body = html`<${ModelVersions} p=${p} name=${sub} role=${role}/>`;
    else if (tab === 'models') body = html`<${Models} p=${p}/>`;
    else if (tab === 'deployments') body = html`<${ProjectDeployments} p=${p}/>`;
    else if (tab === 'members') body = html`<${Members} p=${p} role=${role}/>`;
    else if (tab === 'server') body = html`<${ProjectDetails} p=${p}/>`;
    else body = html`<${Experiments} p=${p} role=${role}/>`;
    return html`<div class="crumbs"><a href="#/projects">Projects</a> /</div>
      <div class="row spread"><h1>${p.name} <${Status} value=${p.status}/></h1>
        <span class="small muted">your role: ${role || 'none'}</span></div>
      <nav class="tabs" aria-label="Project">${tabs.map(([t, l]) => html`<a href=${t ? href('projects', id, t) : href('projects', id)} aria-current=${cur === t ? 'page' : undefined}>${l}</a>`)}</nav>
      ${body}`;
  }}<//>`;
}

function Experiments({ p, role }) {
  const [view, setView] = useState('active');
  const [sort, setSort] = useState({ col: 'name', order: 'ASC' });
  const [state, reload] = useLoad(() => api.list('/experiments', { project_id: p.id, view, _sort: sort.col, _order: sort.order }), [p.id, view, sort.col, sort.order]);
  const edit = may(role, 'editor');
  return html`<div class="row spread"><h2>Experiments</h2>
      <label class="row">Show <select value=${view} onChange=${(e) => setView(e.target.value)}>
        <option value="active">active</option><option value="deleted">deleted</option><option value="all">all</option></select></label></div>
    <${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="experiments"><thead><tr>
      <${SortTh} col="name" label="Name" sort=${sort} setSort=${setSort}/>
      <th>Runs</th>
      <${SortTh} col="creation_time" label="Created" sort=${sort} setSort=${setSort}/>
      <${SortTh} col="last_update_time" label="Last update" sort=${sort} setSort=${setSort}/>
      <th>Stage</th>${edit && html`<th>Actions</th>`}</tr></thead>
      <tbody>${state.data.items.map((x) => html`<tr key=${x.id}>
        <td><a href=${href('projects', p.id, 'experiments', x.id)}>${x.name}</a></td>
        <td>${x.run_count ?? '—'}</td><td>${when(x.creation_time)}</td><td>${when(x.last_update_time)}</td><td>${x.lifecycle_stage}</td>
        ${edit && html`<td>${x.lifecycle_stage === 'deleted'
          ? html`<${Act} run=${async () => { await api.put(`/experiments/${enc(x.id)}/restore`, undefined, { project_id: p.id }); toast(`Experiment ${x.name} restored`); reload(); }}>Restore<//>`
          : html`<${Act} cls="danger" run=${async () => { if (await confirm(`Delete experiment ${x.name}?`, `Its runs are hidden too; you can restore it from "deleted".`, { action: 'Delete' })) { await api.del(`/experiments/${enc(x.id)}`, { project_id: p.id }); toast(`Experiment ${x.name} deleted`); reload(); } }}>Delete<//>`}</td>`}
      </tr>`)}
      ${state.data.items.length === 0 && html`<tr><td colspan="6" class="muted">No experiments. Log runs with MLflow (see Server for the tracking URI).</td></tr>`}</tbody></table></div>`}<//>`;
}

const RUN_PAGE = 20;

function Runs({ p, expId, role }) {
  const [filter, setFilter] = useState('');
  const [applied, setApplied] = useState('');
  const [sort, setSort] = useState({ col: 'start_time', order: 'DESC' });
  const [start, setStart] = useState(0);
  const [picked, setPicked] = useState([]);
  const [state, reload] = useLoad(() => api.list('/runs', { project_id: p.id, experiment_id: expId, filter: applied, _start: start, _end: start + RUN_PAGE, _sort: sort.col, _order: sort.order }),
    [p.id, expId, applied, start, sort.col, sort.order]);
  const exp = useLoad(() => api.get(`/experiments/${enc(expId)}`, { project_id: p.id }), [p.id, expId])[0];
  const items = state.data ? state.data.items : [];
  const keys = useMemo(() => [...new Set(items.flatMap((r) => (r.data.metrics || []).map((m) => m.key)))].sort().slice(0, 4), [state.data]);
  const metric = (r, k) => fmtNum(((r.data.metrics || []).find((m) => m.key === k) || {}).value);
  const toggle = (id) => setPicked((xs) => (xs.includes(id) ? xs.filter((x) => x !== id) : [...xs, id]));
  const compare = () => go(href('projects', p.id, 'runs', picked[0]) + '?compare=' + picked.slice(1).map(enc).join(','));
  return html`<div class="crumbs"><a href=${href('projects', p.id)}>Experiments</a> /</div>
    <h2>Runs of ${exp.data ? exp.data.name : expId}</h2>
    <form class="inline" onSubmit=${(e) => { e.preventDefault(); setStart(0); setApplied(filter); }} aria-label="Filter runs">
      <label style="flex:1">MLflow filter<input value=${filter} onInput=${(e) => setFilter(e.target.value)} placeholder="metrics.test_accuracy > 0.9 and params.seed = '42'" data-testid="run-filter"/></label>
      <button type="submit">Apply</button>
      ${applied && html`<button type="button" onClick=${() => { setFilter(''); setApplied(''); }}>Clear</button>`}
      <button type="button" class="primary" disabled=${picked.length < 1} onClick=${compare} data-testid="compare">${picked.length > 1 ? `Compare ${picked.length} runs` : 'Open selected'}</button>
    </form>
    ${state.error ? html`<div class="error" role="alert" data-testid="filter-error">${state.error.message}</div>` : ''}
    ${state.data && html`<div class="tablewrap"><table data-testid="runs"><thead><tr>
      <th><span class="hide-sm">Pick</span></th>
      <${SortTh} col="run_name" label="Run" sort=${sort} setSort=${setSort}/>
      <${SortTh} col="status" label="Status" sort=${sort} setSort=${setSort}/>
      <${SortTh} col="start_time" label="Started" sort=${sort} setSort=${setSort}/>
      <th class="hide-sm">Duration</th><${SortTh} col="user_id" label="User" sort=${sort} setSort=${setSort}/>
      ${keys.map((k) => html`<${SortTh} col=${'metrics.' + k} label=${k} sort=${sort} setSort=${setSort}/>`)}
    </tr></thead><tbody>${items.map((r) => html`<tr key=${r.id}>
      <td><input type="checkbox" checked=${picked.includes(r.id)} onChange=${() => toggle(r.id)} aria-label=${'pick run ' + (r.info.run_name || r.id)}/></td>
      <td><a href=${href('projects', p.id, 'runs', r.id)} data-testid="run-link">${r.info.run_name || r.id}</a></td>
      <td><${Status} value=${(r.info.status || '').toLowerCase() === 'finished' ? 'finished' : (r.info.status || '').toLowerCase()}/></td>
      <td>${when(r.info.start_time)}</td>
      <td class="hide-sm">${r.info.end_time ? ((r.info.end_time - r.info.start_time) / 1000).toFixed(1) + ' s' : '—'}</td>
      <td>${r.info.user_id}</td>${keys.map((k) => html`<td>${metric(r, k)}</td>`)}
    </tr>`)}
    ${items.length === 0 && html`<tr><td colspan="9" class="muted">No runs${applied ? ' match the filter' : ''}.</td></tr>`}
    </tbody></table></div>
    <${Pager} start=${start} size=${RUN_PAGE} total=${state.data.total} setStart=${setStart}/>`}`;
}

function KV({ rows, testid }) {
  if (!rows || rows.length === 0) return html`<p class="muted small">none</p>`;
  return html`<div class="tablewrap"><table class="kv" data-testid=${testid}><tbody>${rows.map(([k, v]) => html`<tr><td>${k}</td><td class="wrap mono">${v}</td></tr>`)}</tbody></table></div>`;
}

function RunDetail({ p, runId, compare }) {
  const ids = [runId, ...compare.filter((c) => c !== runId)];
  const [state] = useLoad(() => Promise.all(ids.map((r) => api.get(`/runs/${enc(r)}`, { project_id: p.id }))), [p.id, ids.join(',')]);
  return html`<${Loading} state=${state}>${() => {
    const [run] = state.data;
    const name = (r) => r.info.run_name || r.id;
    const d = run.data;
    return html`<div class="crumbs"><a href=${href('projects', p.id)}>Experiments</a> / <a href=${href('projects', p.id, 'experiments', run.info.experiment_id)}>runs</a> /</div>
      <h2>Run ${name(run)} ${state.data.length > 1 ? html`<span class="muted small">compared with ${state.data.slice(1).map(name).join(', ')}</span>` : ''}</h2>
      <p class="small muted">${run.id} · ${run.info.status} · started ${when(run.info.start_time)} · by ${run.info.user_id}</p>
      <${Charts} p=${p} runs=${state.data}/>
      <div class="grid2">
        <div><h2>Params</h2><${KV} testid="params" rows=${(d.params || []).map((x) => [x.key, x.value])}/></div>
        <div><h2>Metrics (latest)</h2><${KV} testid="metrics" rows=${(d.metrics || []).map((x) => [x.key, fmtNum(x.value) + ' @ step ' + (x.step ?? 0)])}/></div>
      </div>
      <h2>Tags</h2><${KV} rows=${(d.tags || []).filter((t) => !t.key.startsWith('mlflow.log-model')).map((x) => [x.key, x.value])}/>
      <h2>Artifacts</h2><${Artifacts} p=${p} runId=${run.id}/>`;
  }}<//>`;
}

function Charts({ p, runs }) {
  const keys = [...new Set(runs.flatMap((r) => (r.data.metrics || []).map((m) => m.key)))].sort();
  const [state] = useLoad(async () => {
    const out = {};
    for (const k of keys) {
      out[k] = [];
      for (const r of runs) {
        if (!(r.data.metrics || []).some((m) => m.key === k)) continue;
        const pts = await history(p.id, r.id, k);
        out[k].push({ label: r.info.run_name || r.id, total: pts.length, points: downsample(pts) });
      }
    }
    return out;
  }, [p.id, runs.map((r) => r.id).join(','), keys.join(',')]);
  if (keys.length === 0) return html`<p class="muted">No metrics logged.</p>`;
  return html`<h2>Metric history</h2><${Loading} state=${state}>${() => html`<div class="charts">
    ${keys.map((k) => html`<${Chart} key=${k} title=${k} series=${state.data[k]}/>`)}</div>`}<//>`;
}

// Artifacts: a folder listing and a preview of the chosen file.
function Artifacts({ p, runId }) {
  const [dir, setDir] = useState('');
  const [file, setFile] = useState(null);
  const [state] = useLoad(() => api.list('/artifacts', { project_id: p.id, run_id: runId, path: dir }), [p.id, runId, dir]);
  const up = dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : '';
  return html`<div class="files card">
    <div><div class="small muted mono">/${dir}</div>
      <${Loading} state=${state}>${() => html`<ul data-testid="artifacts">
        ${dir && html`<li><button onClick=${() => { setDir(up); setFile(null); }}>↑ ..</button></li>`}
        ${state.data.items.map((a) => html`<li key=${a.path}>${a.type === 'File'
          ? html`<button aria-current=${file && file.path === a.path ? 'true' : 'false'} onClick=${() => setFile(a)}>${a.name} <span class="muted small">${bytes(a.size)}</span></button>`
          : html`<button onClick=${() => { setDir(a.path); setFile(null); }}><b>${a.name}/</b>${a.logged_model_id
            ? html` <span class="muted small" title=${'MLflow 3 logged model ' + a.logged_model_id}>logged model</span>`
            : a.type === 'Model' ? html` <span class="muted small">model</span>` : ''}</button>`}</li>`)}
        ${state.data.items.length === 0 && html`<li class="muted small">empty</li>`}
      </ul>`}<//></div>
    <div>${file ? html`<${Preview} key=${file.path} p=${p} runId=${runId} file=${file}/>` : html`<p class="muted small">Pick a file to preview it.</p>`}</div>
  </div>`;
}

const TEXT = /\.(txt|log|md|py|yaml|yml|toml|cfg|ini|sh|html|xml|requirements|MLmodel)$|(^|\/)(MLmodel|requirements\.txt|conda\.yaml|python_env\.yaml)$/i;
const PREVIEW_MAX = 2 << 20;

function Preview({ p, runId, file }) {
  const [state] = useLoad(async () => {
    const { blob, type } = await api.blob('/artifacts/content', { project_id: p.id, run_id: runId, path: file.path });
    const name = file.name.toLowerCase();
    if (type.startsWith('image/') || /\.(png|jpe?g|gif|webp|svg)$/.test(name)) return { kind: 'image', url: URL.createObjectURL(blob), blob };
    if (blob.size > PREVIEW_MAX) return { kind: 'big', blob };
    const text = await blob.text();
    if (name.endsWith('.json')) { try { return { kind: 'text', text: JSON.stringify(JSON.parse(text), null, 2), blob }; } catch { /* shown as text */ } }
    if (name.endsWith('.csv')) return { kind: 'csv', rows: parseCSV(text), blob };
    if (TEXT.test(name) || type.startsWith('text/') || !/[\x00-\x08]/.test(text.slice(0, 2000))) return { kind: 'text', text, blob };
    return { kind: 'binary', blob };
  }, [file.path]);
  useEffect(() => () => state.data && state.data.url && URL.revokeObjectURL(state.data.url), [state.data]);
  const download = () => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(state.data.blob);
    a.download = file.name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
  return html`<${Loading} state=${state}>${() => {
    const v = state.data;
    return html`<div data-testid="preview"><div class="row spread"><b class="mono">${file.path}</b><button onClick=${download}>Download</button></div>
      ${v.kind === 'image' && html`<img class="preview" src=${v.url} alt=${file.name}/>`}
      ${v.kind === 'text' && html`<pre class="preview" tabindex="0">${v.text}</pre>`}
      ${v.kind === 'csv' && html`<div class="tablewrap"><table data-testid="csv"><thead><tr>${(v.rows[0] || []).map((h) => html`<th>${h}</th>`)}</tr></thead>
        <tbody>${v.rows.slice(1, 501).map((r) => html`<tr>${r.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody></table></div>
        ${v.rows.length > 501 ? html`<p class="small muted">first 500 of ${v.rows.length - 1} rows</p>` : ''}`}
      ${v.kind === 'big' && html`<p class="muted">${bytes(v.blob.size)}: too large to preview; download it.</p>`}
      ${v.kind === 'binary' && html`<p class="muted">A binary file (${bytes(v.blob.size)}); download it.</p>`}
    </div>`;
  }}<//>`;
}

// parseCSV reads RFC 4180 CSV (quotes, doubled quotes, newlines in quotes).
export function parseCSV(text) {
  const rows = [];
  let row = [], cell = '', q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') q = false; else cell += c;
    } else if (c === '"') q = true;
    else if (c === ',') { row.push(cell); cell = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell); rows.push(row); row = []; cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

function Models({ p }) {
  const [state] = useLoad(() => api.list('/registered-models', { project_id: p.id }), [p.id]);
  return html`<h2>Registered models</h2><${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="models"><thead><tr>
    <th>Name</th><th>Latest version</th><th>Aliases</th><th>Updated</th></tr></thead><tbody>
    ${state.data.items.map((m) => html`<tr key=${m.name}><td><a href=${href('projects', p.id, 'models', m.name)}>${m.name}</a></td>
      <td>${(m.latest_versions || []).map((v) => v.version).join(', ') || '—'}</td>
      <td>${(m.aliases || []).map((a) => html`<code>@${a.alias}→v${a.version}</code> `)}</td><td>${when(m.last_updated_timestamp)}</td></tr>`)}
    ${state.data.items.length === 0 && html`<tr><td colspan="4" class="muted">No registered models. Register one from a run with MLflow (e.g. examples/train.py --model-name).</td></tr>`}
    </tbody></table></div>`}<//>`;
}

function ModelVersions({ p, name, role }) {
  const [state, reload] = useLoad(() => api.list('/model-versions', { project_id: p.id, model_id: name, _sort: 'version', _order: 'DESC' }), [p.id, name]);
  const edit = may(role, 'editor');
  return html`<div class="crumbs"><a href=${href('projects', p.id, 'models')}>Models</a> /</div><h2>${name}</h2>
    <${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="versions"><thead><tr>
      <th>Version</th><th>Status</th><th>Run</th><th>Aliases</th><th>Created</th>${edit && html`<th>Actions</th>`}</tr></thead><tbody>
      ${state.data.items.map((v) => html`<${VersionRow} key=${v.version} p=${p} v=${v} edit=${edit} reload=${reload}/>`)}
    </tbody></table></div>`}<//>`;
}

function VersionRow({ p, v, edit, reload }) {
  const [alias, setAlias] = useState('');
  const q = { project_id: p.id, model_id: v.model_id };
  const setA = async (e) => {
    e.preventDefault();
    try { await api.put(`/model-versions/${enc(v.version)}/aliases/${enc(alias)}`, undefined, q); toast(`@${alias} → version ${v.version}`); setAlias(''); reload(); } catch (err) { fail(err); }
  };
  const deploy = async () => {
    if (!(await confirm(`Deploy ${v.model_id} version ${v.version}?`, `A local model server starts for ${v.model_id} v${v.version} of ${p.name}.`, { action: 'Deploy', danger: false }))) return;
    const d = await api.post('/deployments', { project_id: p.id, model_id: v.model_id, version: v.version });
    toast(`Deployment ${d.id} created`);
    go(href('deployments', d.id));
  };
  // A deployment that follows an alias serves whatever version it points
  // to, and rolls over (without a failed prediction) when it moves.
  const follow = async (a) => {
    if (!(await confirm(`Deploy ${v.model_id}@${a}?`, `A local model server starts for the version @${a} points to (now ${v.version}); when @${a} moves to another version, that version starts beside it and takes the predict traffic once it answers.`, { action: `Deploy @${a}`, danger: false }))) return;
    try {
      const d = await api.post('/deployments', { project_id: p.id, model_id: v.model_id, follow_alias: a });
      toast(`Deployment ${d.id} follows @${a}`);
      go(href('deployments', d.id));
    } catch (err) { fail(err); }
  };
  return html`<tr data-version=${v.version}>
    <td>${v.version}</td><td>${v.status}</td>
    <td>${v.run_id ? html`<a href=${href('projects', p.id, 'runs', v.run_id)}>${v.run_id.slice(0, 8)}</a>` : '—'}</td>
    <td>${(v.aliases || []).map((a) => html`<span class="row" style="display:inline-flex;gap:.2rem"><code>@${a}</code>${edit && html`<button class="link" aria-label=${'remove alias ' + a}
      onClick=${async () => { try { await api.del(`/model-versions/${enc(v.version)}/aliases/${enc(a)}`, q); toast(`@${a} removed`); reload(); } catch (e) { fail(e); } }}>×</button>
      <button class="link" data-testid="deploy-alias" data-alias=${a} aria-label=${'deploy following @' + a} onClick=${() => follow(a)}>deploy @${a}</button>`} </span>`)}</td>
    <td>${when(v.creation_timestamp)}</td>
    ${edit && html`<td><div class="actions">
      <form class="inline" onSubmit=${setA}><input required size="8" placeholder="alias" value=${alias} onInput=${(e) => setAlias(e.target.value)} aria-label=${'alias for version ' + v.version} data-testid="alias-input"/><button type="submit" data-testid="set-alias">Set alias</button></form>
      <${Act} cls="primary" run=${deploy} testid="deploy">Deploy<//></div></td>`}
  </tr>`;
}

function ProjectDeployments({ p }) {
  const [state] = useLoad(() => api.list('/deployments', { project_id: p.id }), [p.id]);
  return html`<h2>Deployments</h2><${Loading} state=${state}>${() => html`<div class="tablewrap"><table><thead><tr><th>Id</th><th>Model</th><th>Status</th><th>URL</th></tr></thead><tbody>
    ${state.data.items.map((d) => html`<tr><td><a href=${href('deployments', d.id)}>${d.id}</a></td><td>${d.model_id} v${d.version}</td><td><${Status} value=${d.status}/></td><td class="mono small">${d.url || ''}</td></tr>`)}
    ${state.data.items.length === 0 && html`<tr><td colspan="4" class="muted">None. Deploy a model version from Models.</td></tr>`}</tbody></table></div>`}<//>`;
}

function Members({ p, role }) {
  const [state, reload] = useLoad(() => api.get(`/projects/${enc(p.id)}/members`), [p.id]);
  const [user, setUser] = useState('');
  const [newRole, setNewRole] = useState('viewer');
  const [error, setError] = useState(null);
  const own = may(role, 'owner') && me.auth;
  const add = async (e) => {
    e.preventDefault();
    try { await api.put(`/projects/${enc(p.id)}/members/${enc(user)}`, { role: newRole }); toast(`${user} is ${newRole} of ${p.name}`); setUser(''); setError(null); reload(); } catch (err) { setError(err); }
  };
  return html`<h2>Members</h2>${!me.auth && html`<p class="notice">Auth is off: everyone may do everything. Members matter on a team server (MLPANEL_AUTH=true).</p>`}
    <${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="members"><thead><tr><th>User</th><th>Role</th>${own && html`<th></th>`}</tr></thead><tbody>
      ${state.data.map((m) => html`<tr key=${m.user} data-member=${m.user}><td>${m.user}</td><td>${m.role}</td>${own && html`<td>${m.user !== p.createdBy && html`<${Act} cls="danger" run=${async () => { await api.del(`/projects/${enc(p.id)}/members/${enc(m.user)}`); reload(); }}>Remove<//>`}</td>`}</tr>`)}
    </tbody></table></div>`}<//>
    ${own && html`<form class="card inline" onSubmit=${add} style="margin-top:1rem"><label>User<input required value=${user} onInput=${(e) => setUser(e.target.value)} data-testid="member-user"/></label>
      <label>Role<select value=${newRole} onChange=${(e) => setNewRole(e.target.value)} data-testid="member-role"><option value="viewer">viewer</option><option value="editor">editor</option><option value="owner">owner</option></select></label>
      <button class="primary" type="submit" data-testid="add-member">Add or change</button>
      ${error && html`<div class="error" role="alert" style="flex-basis:100%">${error.message}</div>`}</form>`}`;
}
