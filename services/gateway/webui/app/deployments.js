// Deployments: model servers with live status, logs and a try-it form.
import { useState, useEffect, useMemo, useRef } from '../vendor/preact-htm.js';
import * as api from './api.js';
import { html, useLoad, Loading, Status, Act, Pager, ErrorBox, ProjectName, confirm, toast, when, href, go, useRole, may } from './ui.js';
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

// servedAs says how a deployment chose its version: following an alias
// (the version moves with it) or once through one.
function servedAs(d) {
  if (d.follow_alias) return ` (follows @${d.follow_alias})`;
  return d.alias ? ` (@${d.alias})` : '';
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
        <td><a href=${href('deployments', d.id)}>${d.id}</a></td><td><${ProjectName} id=${d.project_id}/></td>
        <td>${d.model_id} v${d.version}${servedAs(d)}</td><td><${Status} value=${d.status}/>${d.stage ? html` <span class="small muted">${d.stage}</span>` : ''}</td>
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
        <tr><td>Project</td><td><${ProjectName} id=${d.project_id}/></td></tr>
        <tr><td>Model</td><td>${d.model_id} version ${d.version}${servedAs(d)} <span class="mono small">${d.model_uri}</span></td></tr>
        ${d.follow_alias && html`<tr data-testid="follows"><td>Follows</td><td class="wrap"><code>@${d.follow_alias}</code>, serving version <b data-testid="served-version">${d.version}</b>
          <div class="small muted">When the alias moves, that version starts beside this one and takes the predict traffic once it answers.</div>
          ${d.alias_error ? html`<div class="error" data-testid="alias-error">${d.alias_error}</div>` : ''}
          ${d.rollover_error ? html`<div class="error" data-testid="rollover-error">${d.rollover_error}</div>` : ''}</td></tr>`}
        <tr><td>Type</td><td>${d.type}${d.instance_name ? ` (${d.instance_name})` : ''}</td></tr>
        <tr><td>Sleep</td><td>${d.idle_timeout ? `after ${d.idle_timeout} without a prediction (min_awake 0)` : 'never (min_awake 1)'}${d.sleep_reason && d.status === 'sleeping' ? html` <span class="small">${d.sleep_reason}; the next prediction wakes it</span>` : ''}</td></tr>
        <tr><td>Predict</td><td class="mono small wrap">POST ${location.origin}/deployments/${d.id}/predict</td></tr>
      </tbody></table>
      ${(d.follow_alias || (d.rollovers || []).length > 0) && html`<${Rollovers} d=${d}/>`}
      <div class="grid2">
        <div><h2>Try it</h2><${TryIt} key=${d.id} d=${d}/></div>
        <div><h2>Log</h2><${LogTail} path=${`/deployments/${enc(id)}/logs`}/></div>
      </div>`;
  }}<//>`;
}

// Rollovers is the history of a deployment that follows an alias: each
// switch from one version to the next, newest first, with how it ended
// and how the new version was proven (or why it failed; the old one kept
// serving then).
function Rollovers({ d }) {
  const rs = [...(d.rollovers || [])].reverse();
  return html`<h2>Rollovers</h2>
    <div class="tablewrap"><table data-testid="rollovers"><thead><tr>
      <th>Version</th><th>Started</th><th>Finished</th><th>Result</th><th>Check or error</th></tr></thead><tbody>
      ${rs.map((r, i) => html`<tr key=${i} data-rollover=${r.from + '-' + r.to}>
        <td>v${r.from} → v${r.to}</td><td>${when(r.started)}</td><td>${when(r.finished)}</td>
        <td><span class=${'status ' + r.result} data-testid="rollover-result">${r.result.replace('_', ' ')}</span></td>
        <td class="small wrap">${r.error ? html`<span class="fail-text">${r.error}</span>` : r.check || ''}</td></tr>`)}
      ${rs.length === 0 && html`<tr><td colspan="5" class="muted">None yet: version ${d.version} has served since ${when(d.created_at)}.</td></tr>`}
    </tbody></table></div>`;
}

// typed turns pasted CSV cells into numbers or booleans where they are
// ones; the form's inputs are typed by the signature instead.
function typed(s) {
  const t = s.trim();
  if (t !== '' && !isNaN(Number(t))) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  return s;
}

// What an MLflow column type becomes in the form: a number input (with a
// step of 1 for integers), a checkbox, or text.
const NUMERIC = { double: 'any', float: 'any', long: '1', integer: '1' };

// signatureFields turns GET /deployments/{id}/schema into the form's
// fields: one per named column, typed, prefilled from the first row of
// the input example. A tensor signature (no column names) has no fields.
export function signatureFields(schema, fallback) {
  const ins = (schema && schema.inputs) || null;
  if (!ins) return (fallback || []).map((name) => ({ name, type: '', required: false, value: '' }));
  if (!ins.every((c) => c.name && c.type !== 'tensor')) return [];
  let ex = schema.input_example;
  if (ex && ex.dataframe_split) ex = ex.dataframe_split;
  let first = {};
  if (ex && Array.isArray(ex.columns) && Array.isArray(ex.data) && ex.data.length) ex.columns.forEach((c, i) => { first[c] = ex.data[0][i]; });
  else if (Array.isArray(ex) && ex.length && typeof ex[0] === 'object') first = ex[0];
  else if (ex && Array.isArray(ex.dataframe_records) && ex.dataframe_records.length) first = ex.dataframe_records[0];
  return ins.map((c) => {
    const v = first[c.name];
    const value = c.type === 'boolean' ? v === true : v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    return { name: c.name, type: typeof c.type === 'string' ? c.type : 'string', required: c.required !== false, value };
  });
}

// fieldValue converts one typed-in value, or says what is wrong with it.
export function fieldValue(f, raw) {
  if (f.type === 'boolean') return { value: !!raw };
  const t = String(raw ?? '').trim();
  if (t === '') return f.required ? { error: 'required: the model needs a value' } : { value: null };
  if (f.type in NUMERIC) {
    const n = Number(t);
    if (!Number.isFinite(n)) return { error: `must be a number (${f.type})` };
    if (NUMERIC[f.type] === '1' && !Number.isInteger(n)) return { error: `must be a whole number (${f.type})` };
    return { value: n };
  }
  if (f.type === '') return { value: typed(t) }; // no signature: the value decides
  return { value: raw };
}

// TryIt builds a predict request from the signature's columns (one row of
// typed inputs) or from pasted CSV (with a header) or JSON.
function TryIt({ d }) {
  // The signature is read from the project's registry, so a stopped
  // project answers 409: the form then falls back to the column names. A
  // rollover serves another version, whose signature may differ.
  const [sch] = useLoad(() => api.get(`/deployments/${enc(d.id)}/schema`).catch(() => null), [d.id, d.version, d.status === 'running']);
  const colsKey = (d.input_columns || []).join('\u0000'); // a new event brings a new array, not new columns
  const fields = useMemo(() => signatureFields(sch.data, d.input_columns), [sch.data, colsKey]);
  const [mode, setMode] = useState('');
  const [vals, setVals] = useState({});
  const [bad, setBad] = useState({});
  const [text, setText] = useState('');
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  // The schema is read again when the deployment's status or version
  // changes (an event may come while the user types): a field the user has
  // edited keeps its value; only untouched ones take the signature's
  // example. The form is keyed by deployment, so edits never carry over to
  // another deployment's page.
  const touched = useRef(new Set());
  useEffect(() => {
    setVals((old) => Object.fromEntries(fields.map((f) => [f.name, touched.current.has(f.name) ? old[f.name] : f.value])));
    if (!mode && !sch.loading) setMode(fields.length ? 'form' : 'json');
  }, [fields, sch.loading]);
  const example = sch.data && sch.data.input_example;
  const pick = (m) => {
    setMode(m);
    if (m === 'json' && !text && example) setText(JSON.stringify(example.columns ? { dataframe_split: example } : example, null, 2));
  };
  const cols = fields.map((f) => f.name);
  const body = () => {
    if (mode === 'form') {
      const out = {}, errs = {};
      for (const f of fields) {
        const r = fieldValue(f, vals[f.name]);
        if (r.error) errs[f.name] = r.error; else out[f.name] = r.value;
      }
      setBad(errs);
      if (Object.keys(errs).length) return null;
      return { dataframe_split: { columns: cols, data: [cols.map((c) => out[c])] } };
    }
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
    try {
      const b = body();
      if (b) setAnswer(await api.post(`/deployments/${enc(d.id)}/predict`, b));
    } catch (err) { setError(err); }
  };
  const input = (f) => {
    const set = (v) => { touched.current.add(f.name); setVals((old) => ({ ...old, [f.name]: v })); if (bad[f.name]) setBad({ ...bad, [f.name]: undefined }); };
    const id = 'f-' + f.name.replace(/\W+/g, '_');
    if (f.type === 'boolean') {
      return html`<label class="check"><input type="checkbox" checked=${!!vals[f.name]} onChange=${(e) => set(e.target.checked)} data-col=${f.name} data-type=${f.type}/>${f.name} <span class="type">boolean</span></label>`;
    }
    const num = f.type in NUMERIC;
    return html`<label>${f.name}${f.type && html` <span class="type">${f.type}${f.required ? '' : ', optional'}</span>`}
      <input type=${num ? 'number' : 'text'} step=${num ? NUMERIC[f.type] : undefined} inputmode=${num ? (NUMERIC[f.type] === '1' ? 'numeric' : 'decimal') : undefined}
        value=${vals[f.name] ?? ''} onInput=${(e) => set(e.target.value)} aria-invalid=${bad[f.name] ? 'true' : undefined} aria-describedby=${bad[f.name] ? id : undefined}
        data-col=${f.name} data-type=${f.type}/>
      ${bad[f.name] && html`<span class="field-error" id=${id} data-testid="field-error">${bad[f.name]}</span>`}</label>`;
  };
  return html`<form class="card" onSubmit=${submit} noValidate aria-label="Try the model" data-testid="tryit" data-schema-version=${sch.data ? sch.data.version : ''}>
    <div class="row" role="radiogroup" aria-label="Input">
      ${fields.length > 0 && html`<label class="row"><input type="radio" name="mode" checked=${mode === 'form'} onChange=${() => pick('form')}/>one row</label>`}
      <label class="row"><input type="radio" name="mode" checked=${mode === 'csv'} onChange=${() => pick('csv')}/>CSV</label>
      <label class="row"><input type="radio" name="mode" checked=${mode === 'json'} onChange=${() => pick('json')}/>JSON</label>
    </div>
    ${mode === 'form' && html`${example ? html`<p class="small muted">Prefilled from the input example the model was logged with.</p>` : ''}<div class="fields">${fields.map(input)}</div>`}
    ${(mode === 'csv' || mode === 'json') && html`<textarea aria-label=${mode + ' input'} value=${text} onInput=${(e) => setText(e.target.value)}
      placeholder=${mode === 'csv' ? (cols.join(',') || 'a,b') + '\n…' : '{"dataframe_split": {"columns": [' + cols.map((c) => JSON.stringify(c)).join(', ') + '], "data": [[…]]}}'}></textarea>`}
    <div class="row" style="margin-top:.5rem"><button class="primary" type="submit" disabled=${d.status !== 'running'} data-testid="predict">Predict</button>
      ${d.status !== 'running' && html`<span class="small muted">the deployment must be running</span>`}</div>
    <${ErrorBox} error=${error}/>
    ${answer !== null && html`<h3>Answer</h3><pre class="preview" data-testid="answer">${JSON.stringify(answer, null, 2)}</pre>`}
  </form>`;
}
