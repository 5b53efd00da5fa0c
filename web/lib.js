// Helpers shared by the pages: the API, DOM building, tables and charts.

export class ApiError extends Error {}

async function readJson(response) {
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new ApiError(body.error || `HTTP ${response.status}`);
  return body;
}

// A named query (GET /api/q/NAME?params): {columns, types, rows, truncated, seconds}.
export async function query(name, params = {}) {
  const qs = new URLSearchParams(params).toString();
  return readJson(await fetch(`/api/q/${name}${qs ? '?' + qs : ''}`));
}

// The SQL console (POST /api/sql).
export async function sql(statement) {
  return readJson(await fetch('/api/sql', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ sql: statement }),
  }));
}

export async function getJson(path) { return readJson(await fetch(path)); }

export function imageUrl(name, params) { return `/api/img/${name}.png?${new URLSearchParams(params)}`; }

// A query result as objects {column: value}.
export function records(result) {
  return result.rows.map((row) => Object.fromEntries(result.columns.map((c, i) => [c, row[i]])));
}

// h('div', {class: 'x', onclick: f}, child, 'text', ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function link(hash, params, text) {
  return h('a', { href: hashUrl(hash, params) }, text);
}

export function hashUrl(page, params = {}) {
  const qs = new URLSearchParams(params).toString();
  return `#/${page}${qs ? '?' + qs : ''}`;
}

export function errorBox(err) { return h('div', { class: 'error' }, err.message || String(err)); }

export function formatValue(v, type) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (Number.isInteger(v) && !/DOUBLE|FLOAT|DECIMAL/.test(type || '')) return String(v);
    if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)) return v.toExponential(3);
    return Number(v.toFixed(4)).toString();
  }
  return String(v);
}

// A table of a query result. opts.onRow(record, tr) makes rows clickable; opts.cell(column,
// value, record) may return a node for a cell.
export function table(result, opts = {}) {
  const head = h('tr', {}, result.columns.map((c) => h('th', {}, c)));
  const body = result.rows.map((row) => {
    const rec = Object.fromEntries(result.columns.map((c, i) => [c, row[i]]));
    const tr = h('tr', { class: opts.onRow ? 'clickable' : null },
      row.map((v, i) => {
        const custom = opts.cell && opts.cell(result.columns[i], v, rec);
        return h('td', { class: typeof v === 'number' ? 'num' : null }, custom ?? formatValue(v, result.types[i]));
      }));
    if (opts.onRow) tr.addEventListener('click', () => opts.onRow(rec, tr));
    return tr;
  });
  return h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, head), h('tbody', {}, body)));
}

// Draws a vega-lite spec into a new element (width: the container's). opts.onClick(datum) is
// called with the data row of a clicked mark.
export function chart(spec, opts = {}) {
  const el = h('div', { class: 'chart' });
  const full = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 'container', height: 300,
    autosize: { type: 'fit', contains: 'padding' }, ...spec };
  window.vegaEmbed(el, full, { actions: false, renderer: 'svg' })
    .then((r) => {
      el.view = r.view;
      if (opts.onClick) r.view.addEventListener('click', (_, item) => item && item.datum && opts.onClick(item.datum));
      el.dispatchEvent(new Event('rendered'));
    })
    .catch((e) => el.replaceChildren(errorBox(e)));
  return el;
}

export function select(label, options, value, onchange) {
  const s = h('select', { onchange: (e) => onchange(e.target.value) },
    options.map(([v, text]) => h('option', { value: v, selected: String(v) === String(value) }, text)));
  return h('label', {}, label, s);
}

export function stat(value, label) { return h('div', { class: 'stat' }, h('b', {}, value), h('span', {}, label)); }

export function card(title, ...children) { return h('section', { class: 'card' }, h('h2', {}, title), ...children); }

export function note(text) { return h('p', { class: 'note' }, text); }
