// Metric history charts: uPlot (a canvas chart of ~45 KB that draws
// 100,000-point series in tens of milliseconds), fed with at most
// MAX_POINTS points per series: longer histories are fetched page by page
// and reduced to the min and max of each step bucket, so spikes survive.
import { useEffect, useRef } from '../vendor/preact-htm.js';
import uPlot from '../vendor/uPlot.esm.js';
import * as api from './api.js';
import { html } from './ui.js';

export const MAX_POINTS = 2000;
const PAGE = 10000; // points per request: keeps each reply far below NATS' 1 MB

// history fetches every point of one metric of one run, in step order.
export async function history(projectId, runId, key) {
  const first = await api.list(`/runs/${encodeURIComponent(runId)}/metrics/${key.split('/').map(encodeURIComponent).join('/')}`,
    { project_id: projectId, _start: 0, _end: PAGE, _sort: 'step', _order: 'ASC' });
  let points = first.items;
  for (let s = PAGE; s < first.total; s += PAGE) {
    const next = await api.list(`/runs/${encodeURIComponent(runId)}/metrics/${key.split('/').map(encodeURIComponent).join('/')}`,
      { project_id: projectId, _start: s, _end: s + PAGE, _sort: 'step', _order: 'ASC' });
    points = points.concat(next.items);
  }
  return points.map((m) => [m.step, typeof m.value === 'number' ? m.value : Number(m.value)]);
}

// downsample keeps the first min and max of each of max/2 equal step
// buckets (in step order), so a series of any length draws as max points
// without losing its extremes.
export function downsample(points, max = MAX_POINTS) {
  if (points.length <= max) return points;
  const buckets = Math.floor(max / 2);
  const lo = points[0][0], hi = points[points.length - 1][0];
  const width = (hi - lo) / buckets || 1;
  const out = [];
  let b = -1, mn = null, mx = null;
  const flush = () => {
    if (!mn) return;
    if (mn === mx) out.push(mn);
    else if (mn[0] <= mx[0]) out.push(mn, mx);
    else out.push(mx, mn);
  };
  for (const p of points) {
    const nb = Math.min(buckets - 1, Math.floor((p[0] - lo) / width));
    if (nb !== b) { flush(); b = nb; mn = mx = p; continue; }
    if (p[1] < mn[1]) mn = p;
    if (p[1] > mx[1]) mx = p;
  }
  flush();
  return out;
}

// STEP_INCRS are the tick spacings of the step axis: steps are integers,
// so ticks fall on whole steps only (uPlot's own choice labels a 3-step
// axis 0, 0.2, 0.4, ...).
export const STEP_INCRS = Array.from({ length: 16 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();

// stepRange is the step axis' range: the data's, except for a metric
// logged at one step only, which gets the steps either side of it (its
// points in the middle). uPlot pads a one-value x axis itself before it
// asks (0 becomes 0–100, the points at the left edge), so the step is
// read from the data, not from the min and max it passes.
export function stepRange(u, min, max) {
  const xs = u.data[0];
  if (xs && xs.length > 0 && xs[0] === xs[xs.length - 1]) return [xs[0] - 1, xs[0] + 1];
  return [min, max];
}

const COLORS = ['#1f5fbf', '#d9480f', '#2b8a3e', '#862e9c', '#e67700', '#0b7285', '#c2255c', '#495057'];

// align merges series ([[step, value]...] each) onto one x axis for uPlot.
function align(series) {
  const xs = [...new Set(series.flatMap((s) => s.map((p) => p[0])))].sort((a, b) => a - b);
  const ix = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const y = new Array(xs.length).fill(null);
    for (const [x, v] of s) y[ix.get(x)] = v;
    return y;
  });
  return [xs, ...ys];
}

// Chart draws one metric of several runs overlaid.
export function Chart({ title, series }) {
  const box = useRef();
  useEffect(() => {
    if (!box.current || !series.length) return;
    const width = Math.max(280, box.current.clientWidth);
    const opts = {
      width, height: 240,
      scales: { x: { time: false, range: stepRange } },
      axes: [{
        label: 'step', incrs: STEP_INCRS,
        // The labels drawn (on the canvas) are kept on the figure too, so
        // what the axis shows can be read.
        values: (u, splits) => {
          const v = splits.map((x) => x.toLocaleString('en-US'));
          if (box.current) box.current.dataset.xticks = v.join(' ');
          return v;
        },
      }, {}],
      series: [{ label: 'step' }, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: s.points.length < 60 } }))],
    };
    const u = new uPlot(opts, align(series.map((s) => s.points)), box.current);
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(280, box.current.clientWidth), height: 240 }));
    ro.observe(box.current);
    return () => { ro.disconnect(); u.destroy(); };
  }, [series]);
  const n = series.reduce((a, s) => a + s.total, 0);
  const shown = series.reduce((a, s) => a + s.points.length, 0);
  return html`<figure class="chart" data-testid="chart" aria-label=${'chart of ' + title} style="margin:0">
    <h3>${title}</h3>
    <div ref=${box}></div>
    <figcaption class="small muted">${n} points${shown < n ? `, drawn as ${shown} (min/max per step bucket)` : ''}</figcaption>
  </figure>`;
}
