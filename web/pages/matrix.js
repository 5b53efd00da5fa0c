// Matrix explorer: one pruned matrix of one run — its mask as a spy image, the kept fraction of
// every row / column, their histogram, and the per-feature agreement with the other methods.
import { card, chart, h, hashUrl, imageUrl, note, query, records, select, stat, table } from '../lib.js';

function go(params) { location.hash = hashUrl('matrix', params); }

function featureCharts(features, axis) {
  const noun = axis === 'row' ? 'output feature (row)' : 'input feature (column)';
  return [
    card(`Kept fraction per ${noun}`, chart({
      data: { values: features },
      mark: { type: 'line', tooltip: true, strokeWidth: 1 },
      encoding: {
        x: { field: 'feature', type: 'quantitative', title: noun },
        y: { field: 'kept_fraction', type: 'quantitative', title: 'kept fraction', scale: { zero: false } },
      },
    })),
    card(`Histogram of the kept fraction over ${axis === 'row' ? 'rows' : 'columns'}`, chart({
      data: { values: features },
      mark: { type: 'bar', tooltip: true },
      encoding: {
        x: { field: 'kept_fraction', type: 'quantitative', bin: { maxbins: 40 }, title: 'kept fraction' },
        y: { aggregate: 'count', type: 'quantitative', title: axis === 'row' ? 'rows' : 'columns' },
      },
    })),
  ];
}

function comparisonChart(comparisons, axis) {
  if (!comparisons.length) return null;
  const values = comparisons.map((r) => ({ ...r, other: `${r.other_method} ${r.other_structure} (run ${r.other_run_id})` }));
  return card(`Jaccard of the kept weights per ${axis}, against other runs`, chart({
    data: { values },
    mark: { type: 'line', tooltip: true, strokeWidth: 1 },
    encoding: {
      x: { field: 'feature', type: 'quantitative', title: axis === 'row' ? 'output feature (row)' : 'input feature (column)' },
      y: { field: 'jaccard', type: 'quantitative', title: 'Jaccard' },
      color: { field: 'other', type: 'nominal', title: 'compared with' },
    },
  }));
}

export async function render(params) {
  const runs = records(await query('prune_runs'));
  if (!runs.length) return h('div', {}, h('h1', {}, 'Matrices'), note('This database has no prune runs.'));
  const run = params.run ?? String(runs[0].run_id);
  const matrices = await query('matrices', { run });
  const mats = records(matrices);
  if (!mats.length) return h('div', {}, h('h1', {}, 'Matrices'), note(`Run ${run} has no matrices.`));
  const matrix = mats.some((m) => m.hf_name === params.matrix) ? params.matrix : mats[0].hf_name;
  const axis = params.axis === 'col' ? 'col' : 'row';
  const info = mats.find((m) => m.hf_name === matrix);
  const runInfo = runs.find((r) => String(r.run_id) === String(run));
  const [features, comparisons] = await Promise.all([
    query('features', { run, matrix, axis }), query('feature_comparisons', { run, matrix, axis })]);
  const feats = records(features);
  const kept = feats.map((f) => f.kept_fraction);
  const controls = h('div', { class: 'controls' },
    select('run', runs.map((r) => [r.run_id, `${r.run_id}: ${r.method} ${r.structure}`]), run, (v) => go({ run: v })),
    select('matrix', mats.map((m) => [m.hf_name, m.hf_name]), matrix, (v) => go({ run, matrix: v, axis })),
    select('features', [['row', 'rows (output features)'], ['col', 'columns (input features)']], axis,
      (v) => go({ run, matrix, axis: v })));
  return h('div', {},
    h('h1', {}, `${runInfo ? `${runInfo.method} ${runInfo.structure}` : `run ${run}`}: ${matrix}`),
    controls,
    h('div', { class: 'stats' },
      stat(`${info.rows} × ${info.cols}`, 'shape [out, in]'),
      stat(`${(100 * info.sparsity).toFixed(2)} %`, 'pruned'),
      stat(kept.length ? Math.min(...kept).toFixed(3) : '—', `least kept ${axis}`),
      stat(kept.length ? Math.max(...kept).toFixed(3) : '—', `most kept ${axis}`)),
    h('div', { class: 'grid' },
      card('Mask (dark = pruned)', h('img', {
        class: 'figure', id: 'spy', alt: `spy plot of ${matrix}`,
        src: imageUrl('spy', { run, matrix, width: 1000, height: 800 }),
      })),
      ...featureCharts(feats, axis),
      comparisonChart(records(comparisons), axis)),
    h('h2', {}, `Matrices of run ${run}`),
    note('Click a row to open that matrix.'),
    table(matrices, {
      onRow: (rec) => go({ run, matrix: rec.hf_name, axis }),
    }));
}
