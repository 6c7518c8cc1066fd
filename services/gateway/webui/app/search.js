// Search across projects (GET /search/runs) and the compare view
// (GET /compare/runs): the filter box, the merged table and an overlay of
// every metric's history of the picked runs. The query lives in the URL
// fragment (#/search?filter=...), so a search can be shared as a link.
import { useState } from '../vendor/preact-htm.js';
import * as api from './api.js';
import { html, useLoad, Loading, Pager, go, fmtNum, when } from './ui.js';
import { Chart, downsample } from './chart.js';

const PAGE = 50;
const FIELDS = ['filter', 'order_by', 'projects', 'experiment_name', 'group_by'];

function metricOf(run, key) {
  const m = (run.data.metrics || []).find((x) => x.key === key);
  return m ? m.value : undefined;
}
const runName = (r) => r.info.run_name || r.id.slice(0, 8);
const orderMetric = (orderBy) => ((orderBy || '').match(/^\s*metrics?\.`?([^`\s,]+)`?/) || [])[1];

export function SearchPage({ query }) {
  const q = Object.fromEntries(FIELDS.map((f) => [f, query.get(f) || '']));
  const ids = (query.get('compare') || '').split(',').filter(Boolean);
  if (ids.length) return html`<${CompareView} ids=${ids} back=${'#/search?' + new URLSearchParams(q)}/>`;
  return html`<${SearchView} q=${q}/>`;
}

function SearchView({ q }) {
  const [form, setForm] = useState(q);
  const [start, setStart] = useState(0);
  const [picked, setPicked] = useState([]);
  const [state] = useLoad(() => api.list('/search/runs', { ...q, _start: start, _end: start + PAGE }), [JSON.stringify(q), start]);
  const submit = (e) => {
    e.preventDefault();
    setStart(0);
    go('#/search?' + new URLSearchParams(Object.fromEntries(Object.entries(form).filter(([, v]) => v))));
  };
  const field = (name, label, placeholder, cls = '') => html`<label class=${cls}>${label}
    <input name=${name} value=${form[name]} placeholder=${placeholder} onInput=${(e) => setForm({ ...form, [name]: e.target.value })} data-testid=${'search-' + name}/></label>`;
  const key = orderMetric(q.order_by);
  const ref = (r) => r.project_id + ':' + r.id;
  const toggle = (r) => setPicked(picked.includes(ref(r)) ? picked.filter((x) => x !== ref(r)) : [...picked, ref(r)]);
  return html`<section>
    <h1>Search runs across projects</h1>
    <form class="card search" onSubmit=${submit} aria-label="Search">
      <div class="row">${field('filter', 'Filter', "metrics.accuracy > 0.9 and params.model = 'xgb'", 'wide')}${field('order_by', 'Order by', 'metrics.accuracy DESC')}</div>
      <div class="row">${field('projects', 'Projects', 'all you may view')}${field('experiment_name', 'Experiment', 'name or pattern%')}
        <label>Leaderboard
          <select name="group_by" value=${form.group_by} onChange=${(e) => setForm({ ...form, group_by: e.target.value })} data-testid="search-group_by">
            <option value="">no (every run)</option><option value="project">best per project</option><option value="experiment_name">best per experiment name</option>
          </select></label>
        <button class="primary" type="submit" data-testid="search-go">Search</button></div>
    </form>
    <${Loading} state=${state}>${() => html`
      <div class="row spread results-bar">
        <span data-testid="search-total">${state.data.total === 1 ? '1 run' : state.data.total + ' runs'}</span>
        <button type="button" class="primary" disabled=${picked.length < 2} title=${picked.length < 2 ? 'Pick two runs or more to compare them' : ''} onClick=${() => go('#/search?' + new URLSearchParams({ ...q, compare: picked.join(',') }))} data-testid="search-compare">Compare ${picked.length || ''} runs</button>
      </div>
      ${state.data.items.length === 0 ? html`<p class="card muted" data-testid="search-empty">No runs match.</p>` : html`<div class="tablewrap"><table data-testid="search-results"><thead><tr>
        <th></th>${q.group_by ? html`<th>Group</th>` : ''}<th>Project</th><th>Run</th><th>Experiment</th><th>Status</th><th>Started</th>${key ? html`<th class="num">${key}</th>` : ''}
      </tr></thead><tbody>
        ${state.data.items.map((r) => html`<tr key=${ref(r)}>
          <td><input type="checkbox" aria-label=${'pick ' + runName(r)} checked=${picked.includes(ref(r))} onChange=${() => toggle(r)}/></td>
          ${q.group_by ? html`<td>${r.group}</td>` : ''}
          <td data-testid="project"><a href=${'#/projects/' + encodeURIComponent(r.project_id)}>${r.project_name}</a></td>
          <td data-testid="run"><a href=${'#/projects/' + encodeURIComponent(r.project_id) + '/runs/' + encodeURIComponent(r.id)}>${runName(r)}</a></td>
          <td data-testid="experiment"><a href=${'#/projects/' + encodeURIComponent(r.project_id) + '/experiments/' + encodeURIComponent(r.info.experiment_id)} title=${'experiment ' + r.info.experiment_id + ' of ' + r.project_name}>${r.experiment_name || r.info.experiment_id}</a></td><td>${r.info.status}</td><td>${when(r.info.start_time)}</td>
          ${key ? html`<td class="num" data-testid="order-value">${fmtNum(metricOf(r, key))}</td>` : ''}
        </tr>`)}
      </tbody></table></div>`}
      ${state.data.total > PAGE ? html`<${Pager} start=${start} size=${PAGE} total=${state.data.total} setStart=${setStart}/>` : ''}`}
    <//>
  </section>`;
}

function CompareView({ ids, back }) {
  const [state] = useLoad(() => api.get('/compare/runs', { ids: ids.join(',') }), [ids.join(',')]);
  return html`<section>
    <p><a href=${back}>‹ Back to the search</a></p>
    <h1>Compare runs</h1>
    <${Loading} state=${state}>${() => {
      const c = state.data;
      const head = html`<tr><th>Key</th>${c.runs.map((r) => html`<th>${r.project_name} / ${runName(r)}</th>`)}</tr>`;
      const table = (name, rows, show) => rows.length === 0 ? html`<p class="muted">None of these runs has any.</p>` : html`<div class="tablewrap"><table class="compare" data-testid=${'compare-' + name}><thead>${head}</thead><tbody>
        ${rows.map((row) => html`<tr class=${row.differs ? 'differs' : ''} data-key=${row.key}>
          <th scope="row">${row.key}${row.differs ? html` <span class="small muted">(differs)</span>` : ''}</th>
          ${row.values.map((v) => html`<td>${v ? show(v) : '—'}</td>`)}</tr>`)}
      </tbody></table></div>`;
      const keys = [...new Set(c.histories.map((h) => h.key))].sort();
      const label = (run) => { const i = c.keys.indexOf(run); return c.runs[i].project_name + ' / ' + runName(c.runs[i]); };
      return html`
        <h2>Params</h2>${table('params', c.params, (v) => v.value)}
        <h2>Metrics (latest)</h2>${table('metrics', c.metrics, (v) => fmtNum(v.metric.value))}
        <h2>Histories</h2>
        ${keys.length === 0 ? html`<p class="muted">No metric history.</p>` : ''}
        <div class="charts">${keys.map((k) => html`<${Chart} key=${k} title=${k} series=${c.histories.filter((h) => h.key === k).map((h) => {
          const pts = h.points.map((p) => [p.step, typeof p.value === 'number' ? p.value : Number(p.value)]);
          return { label: label(h.run), points: downsample(pts), total: pts.length };
        })}/>`)}</div>`;
    }}<//>
  </section>`;
}
