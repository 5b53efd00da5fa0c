// The dashboard's router: #/PAGE?params -> the page module's render(view, params).
import { errorBox, getJson, h } from './lib.js';
import * as overview from './pages/overview.js';
import * as matrix from './pages/matrix.js';
import * as compare from './pages/compare.js';
import * as coactivation from './pages/coactivation.js';
import * as activations from './pages/activations.js';
import * as sqlPage from './pages/sql.js';
import * as bench from './pages/bench.js';

const pages = { overview, matrix, compare, coactivation, activations, sql: sqlPage, bench };

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [name, qs] = hash.split('?');
  return { page: pages[name] ? name : 'overview', params: Object.fromEntries(new URLSearchParams(qs || '')) };
}

let current = 0;
async function show() {
  const { page, params } = route();
  const id = ++current;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === page);
  const view = document.getElementById('view');
  view.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    const content = await pages[page].render(params);
    if (id === current) view.replaceChildren(content);
  } catch (e) {
    if (id === current) view.replaceChildren(errorBox(e));
  }
}

window.addEventListener('hashchange', show);
getJson('/api/info').then((info) => { document.getElementById('db').textContent = info.db; }).catch(() => {});
show();
