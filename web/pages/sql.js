// SQL console: one read-only query against the study database, its rows as a table, and a
// one-click chart of two of its columns.
import { card, chart, errorBox, h, hashUrl, note, query, records, select, sql, table } from '../lib.js';

const EXAMPLE = `SELECT r.method, r.structure, p.ppl
FROM perplexities p JOIN runs r USING (run_id)
WHERE p.kind = 'pruned'
ORDER BY p.ppl`;

function chartOf(result, x, y, mark) {
  const types = Object.fromEntries(result.columns.map((c, i) => [c, result.types[i]]));
  const numeric = (c) => /INT|DOUBLE|FLOAT|DECIMAL|HUGEINT/.test(types[c]);
  const kind = (c) => (numeric(c) ? 'quantitative' : /DATE|TIME/.test(types[c]) ? 'temporal' : 'nominal');
  const m = mark === 'auto' ? (numeric(x) ? 'point' : 'bar') : mark;
  return chart({
    data: { values: records(result) },
    mark: { type: m, tooltip: true, ...(m === 'line' ? { point: true } : {}) },
    encoding: {
      x: { field: x, type: kind(x), title: x, sort: m === 'bar' ? null : undefined, axis: kind(x) === 'nominal' ? { labelAngle: -30 } : {} },
      y: { field: y, type: kind(y), title: y },
    },
  });
}

function resultView(result) {
  const cols = result.columns;
  const numericCols = cols.filter((_, i) => /INT|DOUBLE|FLOAT|DECIMAL/.test(result.types[i]));
  let x = cols[0];
  let y = numericCols.find((c) => c !== x) ?? cols[Math.min(1, cols.length - 1)];
  let mark = 'auto';
  const chartSlot = h('div', { id: 'sql-chart' });
  const draw = () => chartSlot.replaceChildren(chartOf(result, x, y, mark));
  const controls = h('div', { class: 'controls' },
    select('x', cols.map((c) => [c, c]), x, (v) => { x = v; }),
    select('y', cols.map((c) => [c, c]), y, (v) => { y = v; }),
    select('mark', [['auto', 'auto'], ['point', 'points'], ['line', 'line'], ['bar', 'bars']], mark, (v) => { mark = v; }),
    h('button', { id: 'chart-button', class: 'secondary', onclick: draw }, 'Chart'));
  const summary = `${result.rows.length} row${result.rows.length === 1 ? '' : 's'}${result.truncated ? ' (truncated at the row limit)' : ''}, ${(1000 * result.seconds).toFixed(1)} ms`;
  return h('div', {}, h('p', { class: 'note', id: 'sql-summary' }, summary), h('div', { id: 'sql-result' }, table(result)),
    cols.length >= 2 && result.rows.length ? card('Chart two columns', controls, chartSlot) : null);
}

export async function render(params) {
  const box = h('textarea', { id: 'sql', spellcheck: 'false' });
  box.value = params.q ?? EXAMPLE;
  const out = h('div', { id: 'sql-output' });
  const run = async () => {
    history.replaceState(null, '', hashUrl('sql', { q: box.value }));
    out.replaceChildren(h('p', { class: 'muted' }, 'Running…'));
    try {
      out.replaceChildren(resultView(await sql(box.value)));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  };
  box.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
  const tables = records(await query('tables'));
  const schema = h('div', { class: 'schema' }, tables.map((t) => h('div', {},
    h('code', { onclick: () => { box.value = `SELECT * FROM ${t.name} LIMIT 100`; run(); } }, t.name),
    h('span', { class: 'muted' }, ` ${t.type === 'VIEW' ? '(view) ' : ''}${t.columns}`))));
  if (params.q) run();
  return h('div', {},
    h('h1', {}, 'SQL console'),
    note('One read-only statement (SELECT, WITH … SELECT, EXPLAIN) against the study database; Ctrl+Enter runs it. The database cannot be changed from here. docs/schema.md describes the tables.'),
    h('div', { class: 'sql-layout' },
      h('div', {}, box, h('div', { class: 'controls' }, h('button', { id: 'run-button', onclick: run }, 'Run')), out),
      card('Tables and views', note('Click a name to show its first rows.'), schema)));
}
