// Activation sparsity: histograms of the activations at each block's linear inputs with the
// TEAL thresholds marked, the thresholds themselves, and perplexity against activation sparsity.
import { card, chart, h, hashUrl, note, query, records, select, table } from '../lib.js';

const POINTS = { attn_in: 'attn_in (q/k/v input)', o_in: 'o_in (o_proj input)', mlp_in: 'mlp_in (gate/up input)', down_in: 'down_in (down_proj input)' };

function go(params) { location.hash = hashUrl('activations', params); }

export async function render(params) {
  const [thresholds, ppl] = await Promise.all([query('act_thresholds'), query('perplexities')]);
  const ts = records(thresholds);
  if (!ts.length) return h('div', {}, h('h1', {}, 'Activations'), note('This database has no activation runs.'));
  const layers = [...new Set(ts.map((t) => t.layer))];
  const points = [...new Set(ts.map((t) => t.point))];
  const layer = layers.includes(Number(params.layer)) ? Number(params.layer) : layers[Math.floor(layers.length / 2)];
  const point = points.includes(params.point) ? params.point : (points.includes('down_in') ? 'down_in' : points[0]);
  const logY = params.log !== '0';
  const bins = records(await query('act_histogram', { layer, point }));
  const mine = ts.filter((t) => t.layer === layer && t.point === point);
  const shown = bins.filter((b) => !logY || b.count > 0);
  const floor = logY && shown.length ? Math.min(...shown.map((b) => b.count)) / 2 : 0;  // log bars start here
  const rules = mine.flatMap((t) => [-t.threshold, t.threshold].map((x) => ({ x, target: `${Math.round(100 * t.target_sparsity)} %` })));
  const hist = chart({
    height: 320,
    layer: [
      {
        data: { values: shown },
        mark: { type: 'bar', color: '#7d8fb3', tooltip: true },
        encoding: {
          x: { field: 'lo', type: 'quantitative', title: 'activation value' },
          x2: { field: 'hi' },
          y: { field: 'count', type: 'quantitative', title: logY ? 'count (log)' : 'count', scale: logY ? { type: 'log', domainMin: floor } : {} },
          y2: { datum: floor },
        },
      },
      {
        data: { values: rules },
        mark: { type: 'rule', strokeWidth: 2, tooltip: true },
        encoding: { x: { field: 'x', type: 'quantitative' }, color: { field: 'target', type: 'nominal', title: 'sparsity: |x| ≤ t' } },
      },
    ],
  });
  hist.id = 'act-histogram';
  const act = records(ppl).filter((r) => r.kind === 'act-sparsified' || r.kind === 'dense')
    .map((r) => ({ sparsity: 100 * (r.act_sparsity ?? 0), ppl: r.ppl }));
  const pivot = {
    columns: ['layer', 'point', ...[...new Set(ts.map((t) => t.target_sparsity))].map((s) => `t at ${Math.round(100 * s)} %`)],
    types: [],
    rows: layers.flatMap((l) => points.map((p) => [l, p, ...ts.filter((t) => t.layer === l && t.point === p).map((t) => t.threshold)])),
  };
  return h('div', {},
    h('h1', {}, 'Activations'),
    h('div', { class: 'controls' },
      select('layer', layers.map((l) => [l, l]), layer, (v) => go({ layer: v, point, log: logY ? 1 : 0 })),
      select('point', points.map((p) => [p, POINTS[p] ?? p]), point, (v) => go({ layer, point: v, log: logY ? 1 : 0 })),
      select('count axis', [[1, 'log'], [0, 'linear']], logY ? 1 : 0, (v) => go({ layer, point, log: v }))),
    h('div', { class: 'grid' },
      card(`Activations of block ${layer} at ${POINTS[point] ?? point}`,
        note('Vertical lines: the thresholds ±t that zero the given share of activations (|x| ≤ t).'), hist),
      card('Perplexity with small activations zeroed', chart({
        data: { values: act },
        mark: { type: 'line', point: true, tooltip: true },
        encoding: {
          x: { field: 'sparsity', type: 'quantitative', title: 'activations zeroed at every linear input (%)' },
          y: { field: 'ppl', type: 'quantitative', title: 'perplexity (log)', scale: { type: 'log', nice: false, padding: 12 } },
        },
      }))),
    h('h2', {}, 'Thresholds t per layer and input'),
    note('Click a row to show its histogram.'),
    table(pivot, { onRow: (rec) => go({ layer: rec.layer, point: rec.point, log: logY ? 1 : 0 }) }));
}
