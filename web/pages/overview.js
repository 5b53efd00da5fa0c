// Overview: what the study holds, its runs, and perplexity per method and structure.
import { card, chart, h, hashUrl, link, note, query, records, stat, table } from '../lib.js';

function pplCharts(ppl) {
  const pruned = ppl.filter((r) => r.kind === 'pruned');
  const dense = ppl.find((r) => r.kind === 'dense');
  const out = [];
  if (pruned.length) {
    const rule = dense ? [{ mark: { type: 'rule', color: '#b42318', strokeDash: [4, 3] }, encoding: { y: { datum: dense.ppl } } }] : [];
    out.push(card('Perplexity after pruning',
      note(dense ? `Bars: pruned models; dashed line: the dense model (${dense.ppl.toFixed(2)}).` : 'Bars: pruned models.'),
      chart({
        data: { values: pruned },
        layer: [{
          mark: { type: 'bar', tooltip: true },
          encoding: {
            x: { field: 'structure', type: 'nominal', title: 'structure', axis: { labelAngle: 0 } },
            xOffset: { field: 'method' },
            y: { field: 'ppl', type: 'quantitative', title: 'perplexity' },
            color: { field: 'method', type: 'nominal' },
          },
        }, ...rule],
      })));
    const unstructured = pruned.filter((r) => r.sparsity !== null && /^u/.test(r.structure || ''));
    const levels = new Set(unstructured.map((r) => r.sparsity));
    if (levels.size >= 2) {
      const pts = unstructured.map((r) => ({ method: r.method, sparsity: 100 * r.sparsity, ppl: r.ppl }));
      if (dense) for (const m of new Set(pts.map((p) => p.method))) pts.push({ method: m, sparsity: 0, ppl: dense.ppl });
      out.push(card('Perplexity against unstructured sparsity', chart({
        data: { values: pts },
        mark: { type: 'line', point: true, tooltip: true },
        encoding: {
          x: { field: 'sparsity', type: 'quantitative', title: 'weights pruned (%)' },
          y: { field: 'ppl', type: 'quantitative', title: 'perplexity (log)', scale: { type: 'log', nice: false, padding: 12 } },
          color: { field: 'method', type: 'nominal' },
        },
      })));
    }
  }
  return out;
}

export async function render() {
  const [runs, ppl] = await Promise.all([query('runs'), query('perplexities')]);
  const runRecs = records(runs);
  const pplRecs = records(ppl);
  const dense = pplRecs.find((r) => r.kind === 'dense');
  const model = runRecs.find((r) => r.model_name)?.model_name ?? '—';
  const pruneRuns = runRecs.filter((r) => r.kind === 'prune');
  const mainTable = table(ppl, {
    cell: (col, v, rec) => (col === 'run_id' && rec.run_kind === 'prune' ? link('matrix', { run: v }, v) : null),
  });
  return h('div', {},
    h('h1', {}, `Study of ${model}`),
    h('div', { class: 'stats' },
      stat(runRecs.length, 'runs'),
      stat(pruneRuns.length, 'pruned models'),
      stat(dense ? dense.ppl.toFixed(2) : '—', `dense perplexity${dense ? ' on ' + dense.dataset : ''}`),
      stat(new Set(pruneRuns.map((r) => r.method)).size, 'methods')),
    h('div', { class: 'grid' }, pplCharts(pplRecs)),
    h('h2', {}, 'Perplexities'),
    note('A prune run links to its matrices: mask spy images and per-feature statistics.'),
    mainTable,
    h('h2', {}, 'Runs'),
    table(runs, {
      cell: (col, v, rec) => {
        if (col !== 'run_id') return null;
        if (rec.kind === 'prune') return link('matrix', { run: v }, v);
        if (rec.kind === 'compare') {
          const pair = /runs=(\d+),(\d+)/.exec(rec.options || '');
          return h('a', { href: hashUrl('compare', pair ? { a: pair[1], b: pair[2] } : {}) }, v);
        }
        if (rec.kind === 'analysis') return h('a', { href: hashUrl('coactivation') }, v);
        if (rec.kind === 'acts') return h('a', { href: hashUrl('activations') }, v);
        return null;
      },
    }));
}
