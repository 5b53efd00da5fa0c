// Method comparison: how far the masks of two runs agree, layer by component (Jaccard of the
// kept weights); a cell opens that matrix in the matrix explorer.
import { card, chart, h, hashUrl, note, query, records, select, table } from '../lib.js';

export async function render(params) {
  const pairs = records(await query('comparison_pairs'));
  if (!pairs.length) return h('div', {}, h('h1', {}, 'Method comparison'), note('This database has no mask comparisons.'));
  const key = (p) => `${p.run_a}-${p.run_b}`;
  const pair = pairs.find((p) => key(p) === `${params.a}-${params.b}`) ?? pairs[0];
  const result = await query('comparison', { a: pair.run_a, b: pair.run_b });
  const rows = records(result);
  const metric = ['jaccard', 'hamming', 'cosine'].includes(params.metric) ? params.metric : 'jaccard';
  const open = (d) => { location.hash = hashUrl('matrix', { run: pair.run_a, matrix: d.hf_name }); };
  const heat = chart({
    data: { values: rows },
    height: { step: 34 },
    encoding: {
      x: { field: 'component', type: 'nominal', title: 'component', axis: { labelAngle: -30 } },
      y: { field: 'layer', type: 'ordinal', title: 'layer' },
    },
    layer: [
      {
        mark: { type: 'rect', cursor: 'pointer', tooltip: { content: 'data' } },
        encoding: { color: { field: metric, type: 'quantitative', title: metric, scale: { scheme: 'viridis' } } },
      },
      {
        mark: { type: 'text', fontSize: 11 },
        encoding: {
          text: { field: metric, type: 'quantitative', format: '.3f' },
          color: { value: 'white' },
        },
      },
    ],
  }, { onClick: open });
  heat.id = 'heatmap';
  return h('div', {},
    h('h1', {}, 'Method comparison'),
    h('div', { class: 'controls' },
      select('masks', pairs.map((p) => [key(p), `${p.method_a} ${p.structure_a} (run ${p.run_a}) vs ${p.method_b} ${p.structure_b} (run ${p.run_b})`]),
        key(pair), (v) => { const [a, b] = v.split('-'); location.hash = hashUrl('compare', { a, b, metric }); }),
      select('metric', [['jaccard', 'Jaccard of kept weights'], ['hamming', 'Hamming (fraction differing)'], ['cosine', 'cosine of pruned weights']],
        metric, (v) => { location.hash = hashUrl('compare', { a: pair.run_a, b: pair.run_b, metric: v }); })),
    card(`${metric} per layer × component: ${pair.method_a} vs ${pair.method_b}`,
      note(`Click a cell to open that matrix of run ${pair.run_a} (${pair.method_a} ${pair.structure_a}).`), heat),
    h('h2', {}, 'All matrices'),
    table(result, { onRow: open }));
}
