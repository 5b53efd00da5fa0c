// Benchmarks: the benchmark runs stored in the database, and the project's benchmark notes.
import { card, chart, errorBox, getJson, h, note, query, records, table } from '../lib.js';
import { markdownToHtml } from '../markdown.js';

export async function render() {
  const [rows, notes] = await Promise.all([query('benchmarks'), getJson('/api/bench-results').catch((e) => e)]);
  const recs = records(rows);
  const parts = [h('h1', {}, 'Benchmarks')];
  if (recs.length) {
    parts.push(card('Speed-up over the dense baseline', chart({
      data: { values: recs.filter((r) => r.speedup !== null) },
      mark: { type: 'line', point: true, tooltip: true },
      encoding: {
        x: { field: 'sparsity', type: 'quantitative', title: 'sparsity' },
        y: { field: 'speedup', type: 'quantitative', title: 'speed-up (baseline / time)' },
        color: { field: 'shape', type: 'nominal' },
        strokeDash: { field: 'name', type: 'nominal' },
      },
    })), h('h2', {}, 'Benchmark rows'), table(rows));
  } else {
    parts.push(note('The database holds no benchmark runs.'));
  }
  if (notes instanceof Error) {
    parts.push(h('h2', {}, 'Benchmark notes'), errorBox(notes));
  } else {
    const md = h('div', { class: 'markdown', id: 'bench-notes' });
    md.innerHTML = markdownToHtml(notes.markdown);
    parts.push(h('h2', {}, `Benchmark notes (${notes.path})`), md);
  }
  return h('div', {}, parts);
}
