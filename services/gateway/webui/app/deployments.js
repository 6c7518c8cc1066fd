// Deployments: model servers with live status, logs and a try-it form.
import { useState, useEffect } from '../vendor/preact-htm.js';
import * as api from './api.js';
import { html, useLoad, Loading, Status, Act, Pager, ErrorBox, confirm, toast, when, href, go, useRole, may } from './ui.js';
import { LogTail } from './projects.js';
import { parseCSV } from './project.js';

const enc = encodeURIComponent;
const PAGE = 25;

// useLive keeps a list of deployments current from their events.
function useLive(setRows, reload) {
  useEffect(() => api.onEvent((ev) => {
    if (!ev.type.startsWith('io.mlpanel.deployment.')) return;
    if (ev.type.endsWith('.created')) { reload(); return; }
    setRows((rs) => rs && rs.map((r) => (r.id === ev.data.id ? { ...r, ...ev.data } : r)));
  }), [reload]);
}

export function DeploymentsPage() {
  const [start, setStart] = useState(0);
  const [state, reload] = useLoad(() => api.list('/deployments', { _start: start, _end: start + PAGE, _sort: 'id', _order: 'DESC' }), [start]);
  const [rows, setRows] = useState(null);
  useEffect(() => { if (state.data) setRows(state.data.items); }, [state.data]);
  useLive(setRows, reload);
  return html`<h1>Deployments</h1>
    <p class="small muted">Deploy a registered model version from its project's Models tab.</p>
    <${Loading} state=${state}>${() => html`<div class="tablewrap"><table data-testid="deployments"><thead><tr>
      <th>Id</th><th>Project</th><th>Model</th><th>Status</th><th class="hide-sm">Type</th><th class="hide-sm">Updated</th></tr></thead><tbody>
      ${(rows || []).filter((d) => d.status !== 'deleted').map((d) => html`<tr key=${d.id}>
        <td><a href=${href('deployments', d.id)}>${d.id}</a></td><td><a href=${href('projects', d.project_id)}>${d.project_id}</a></td>
        <td>${d.model_id} v${d.version}${d.alias ? ` (@${d.alias})` : ''}</td><td><${Status} value=${d.status}/>${d.stage ? html` <span class="small muted">${d.stage}</span>` : ''}</td>
        <td class="hide-sm">${d.type}</td><td class="hide-sm">${when(d.updated_at)}</td></tr>`)}
      ${rows && rows.length === 0 && html`<tr><td colspan="6" class="muted">No deployments.</td></tr>`}
    </tbody></table></div><${Pager} start=${start} size=${PAGE} total=${state.data.total} setStart=${setStart}/>`}<//>`;
}

export function DeploymentPage({ id }) {
  const [state, , setD] = useLoad(() => api.get(`/deployments/${enc(id)}`), [id]);
  useEffect(() => api.onEvent((ev) => {
    if (ev.type.startsWith('io.mlpanel.deployment.') && ev.data && ev.data.id === id) setD(ev.data);
  }), [id]);
  const role = useRole(state.data ? state.data.project_id : '');
  return html`<${Loading} state=${state}>${() => {
    const d = state.data;
    const edit = may(role, 'editor');
    const act = (verb, path) => async () => { const nd = await api.put(`/deployments/${enc(id)}/${path}`); toast(`Deployment ${id}: ${verb}`); setD(nd); };
    const remove = async () => {
      if (!(await confirm(`Delete deployment ${id}?`, `The model server of ${d.model_id} v${d.version} stops and the deployment is removed.`, { action: `Delete deployment ${id}` }))) return;
      await api.del(`/deployments/${enc(id)}`);
      toast(`Deployment ${id} deleted`);
      go('#/deployments');
    };
    const up = d.status === 'running' || d.status === 'starting' || d.status === 'pending' || d.status === 'sleeping';
    return html`<div class="crumbs"><a href="#/deployments">Deployments</a> /</div>
      <div class="row spread"><h1>Deployment ${d.id} <${Status} value=${d.status}/></h1>
        ${edit && html`<div class="actions">
          ${!up && html`<${Act} run=${act('starting', 'run')} testid="start">Start<//>`}
          ${up && html`<${Act} run=${act('stopping', 'stop')} testid="stop">Stop<//>`}
          <${Act} cls="danger" run=${remove} testid="delete-deployment">Delete<//></div>`}</div>
      ${d.stage && d.status !== 'running' ? html`<div class="notice">${d.stage}…</div>` : ''}
      ${d.error ? html`<div class="error">${d.error}</div>` : ''}
      <table class="kv card"><tbody>
        <tr><td>Project</td><td><a href=${href('projects', d.project_id)}>${d.project_id}</a></td></tr>
        <tr><td>Model</td><td>${d.model_id} version ${d.version}${d.alias ? ` (@${d.alias})` : ''} <span class="mono small">${d.model_uri}</span></td></tr>
        <tr><td>Type</td><td>${d.type}${d.instance_name ? ` (${d.instance_name})` : ''}</td></tr>
        <tr><td>Sleep</td><td>${d.idle_timeout ? `after ${d.idle_timeout} without a prediction (min_awake 0)` : 'never (min_awake 1)'}${d.sleep_reason && d.status === 'sleeping' ? html` <span class="small">${d.sleep_reason}; the next prediction wakes it</span>` : ''}</td></tr>
        <tr><td>Predict</td><td class="mono small wrap">POST ${location.origin}/deployments/${d.id}/predict</td></tr>
      </tbody></table>
      <div class="grid2">
        <div><h2>Try it</h2><${TryIt} d=${d}/></div>
        <div><h2>Log</h2><${LogTail} path=${`/deployments/${enc(id)}/logs`}/></div>
      </div>`;
  }}<//>`;
}

// typed turns what was typed into a number or boolean where it is one:
// the model's signature names the columns; the values decide their type.
function typed(s) {
  const t = s.trim();
  if (t !== '' && !isNaN(Number(t))) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  return s;
}

// TryIt builds a predict request from the signature's columns (one row of
// inputs) or from pasted CSV (with a header) or JSON.
function TryIt({ d }) {
  const cols = d.input_columns || [];
  const [mode, setMode] = useState(cols.length ? 'form' : 'json');
  const [vals, setVals] = useState({});
  const [text, setText] = useState('');
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const body = () => {
    if (mode === 'form') return { dataframe_split: { columns: cols, data: [cols.map((c) => typed(vals[c] || ''))] } };
    if (mode === 'csv') {
      const rows = parseCSV(text.trim());
      if (rows.length < 2) throw new Error('Paste CSV with a header row and at least one data row.');
      return { dataframe_split: { columns: rows[0], data: rows.slice(1).map((r) => r.map(typed)) } };
    }
    try { return JSON.parse(text); } catch (e) { throw new Error(`The JSON does not parse (${e.message}): send e.g. {"dataframe_split": {"columns": [...], "data": [[...]]}}`); }
  };
  const submit = async (e) => {
    e.preventDefault();
    setError(null); setAnswer(null);
    try { setAnswer(await api.post(`/deployments/${enc(d.id)}/predict`, body())); } catch (err) { setError(err); }
  };
  return html`<form class="card" onSubmit=${submit} aria-label="Try the model" data-testid="tryit">
    <div class="row" role="radiogroup" aria-label="Input">
      ${cols.length > 0 && html`<label class="row"><input type="radio" name="mode" checked=${mode === 'form'} onChange=${() => setMode('form')}/>one row</label>`}
      <label class="row"><input type="radio" name="mode" checked=${mode === 'csv'} onChange=${() => setMode('csv')}/>CSV</label>
      <label class="row"><input type="radio" name="mode" checked=${mode === 'json'} onChange=${() => setMode('json')}/>JSON</label>
    </div>
    ${mode === 'form' && html`<div class="grid2" style="margin:.5rem 0">${cols.map((c) => html`<label>${c}<input value=${vals[c] || ''} onInput=${(e) => setVals({ ...vals, [c]: e.target.value })} inputmode="decimal" data-col=${c}/></label>`)}</div>`}
    ${mode !== 'form' && html`<textarea aria-label=${mode + ' input'} value=${text} onInput=${(e) => setText(e.target.value)}
      placeholder=${mode === 'csv' ? (cols.join(',') || 'a,b') + '\n…' : '{"dataframe_split": {"columns": [' + cols.map((c) => JSON.stringify(c)).join(', ') + '], "data": [[…]]}}'}></textarea>`}
    <div class="row" style="margin-top:.5rem"><button class="primary" type="submit" disabled=${d.status !== 'running'} data-testid="predict">Predict</button>
      ${d.status !== 'running' && html`<span class="small muted">the deployment must be running</span>`}</div>
    <${ErrorBox} error=${error}/>
    ${answer !== null && html`<h3>Answer</h3><pre class="preview" data-testid="answer">${JSON.stringify(answer, null, 2)}</pre>`}
  </form>`;
}
