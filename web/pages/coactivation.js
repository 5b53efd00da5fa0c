// Co-activation explorer: the k-means clusterings of a source (a mask's rows or an activation
// bitset), their separation ratio and stability, the t-SNE map coloured by cluster, and, for
// masks, the clustered spy and the gradient spy around a chosen reference feature.
import { card, chart, h, hashUrl, imageUrl, note, query, records, select, table } from '../lib.js';

function go(params) { location.hash = hashUrl('coactivation', params); }

function gradientCard(chosen, feature, features) {
  const img = h('img', { class: 'figure', id: 'gradient-spy', alt: 'gradient spy',
    src: imageUrl('gradient_spy', { analysis: chosen.analysis_id, feature }) });
  const input = h('input', { type: 'number', min: 0, max: features - 1, value: feature, style: 'width: 90px' });
  const apply = () => go({ source: chosen.description, k: chosen.k, feature: input.value });
  input.addEventListener('change', apply);
  return card('Gradient spy: features ordered by Hamming distance to a reference',
    h('div', { class: 'controls' }, h('label', {}, 'reference feature', input),
      note('or click a point of the t-SNE map')), img);
}

export async function render(params) {
  const all = records(await query('clusterings'));
  if (!all.length) return h('div', {}, h('h1', {}, 'Co-activation'), note('This database has no clusterings.'));
  // A source is picked by its description (it names the block; the key, e.g. "wanda/u50", does not).
  // By default a mask with a t-SNE map (masks come with spy images), else any source with one.
  const rank = (c) => (c.has_tsne ? 0 : 2) + (c.hf_name !== null ? 0 : 1);
  const sources = [...new Set([...all].sort((a, b) => rank(a) - rank(b)).map((c) => c.description))];
  const source = sources.includes(params.source) ? params.source : sources[0];
  const mine = all.filter((c) => c.description === source);
  const ks = [...new Set(mine.map((c) => c.k))].sort((a, b) => a - b);
  const k = ks.includes(Number(params.k)) ? Number(params.k) : ks[Math.min(1, ks.length - 1)];
  const chosen = mine.find((c) => c.k === k);
  const isMask = chosen.hf_name !== null;
  const feature = Math.max(0, Math.min(chosen.features - 1, Number(params.feature ?? 0) || 0));
  const [tsne, coherence] = await Promise.all([query('tsne', { analysis: chosen.analysis_id }), query('coherence', { source: chosen.source })]);
  const points = records(tsne);

  const cards = [
    card('Separation ratio (between / within cluster distance) by k', chart({
      data: { values: mine },
      layer: [
        { mark: { type: 'line' }, encoding: { y: { aggregate: 'mean', field: 'separation_ratio', type: 'quantitative' } } },
        { mark: { type: 'point', filled: true, tooltip: true }, encoding: { y: { field: 'separation_ratio', type: 'quantitative' } } },
      ],
      encoding: {
        x: { field: 'k', type: 'ordinal', title: 'k', axis: { labelAngle: 0 } },
        y: { title: 'separation ratio', scale: { zero: false } },
      },
    })),
  ];
  if (points.length) {
    cards.push(card(`t-SNE of the features, coloured by k-means (k = ${k})`, note('Hover a point for its feature and cluster; click it to make it the gradient spy\'s reference.'),
      Object.assign(chart({
        data: { values: points },
        height: 380,
        mark: { type: 'circle', size: 28, opacity: 0.8, cursor: 'pointer' },
        encoding: {
          x: { field: 'x', type: 'quantitative', title: 't-SNE 1', axis: { grid: false }, scale: { zero: false } },
          y: { field: 'y', type: 'quantitative', title: 't-SNE 2', axis: { grid: false }, scale: { zero: false } },
          color: { field: 'cluster', type: 'nominal', title: 'cluster' },
          tooltip: [{ field: 'feature', type: 'quantitative' }, { field: 'cluster', type: 'nominal' }],
        },
      }, { onClick: (d) => go({ source, k, feature: d.feature }) }), { id: 'tsne' })));
  } else {
    cards.push(card('t-SNE', note('No t-SNE embedding was stored for this source.')));
  }
  if (isMask) {
    cards.push(card(`Clustered spy (k = ${k})`, h('img', { class: 'figure', id: 'clustered-spy', alt: 'clustered spy',
      src: imageUrl('clustered_spy', { analysis: chosen.analysis_id }) })));
    cards.push(gradientCard(chosen, feature, chosen.features));
  } else {
    cards.push(card('Spy images', note('Activation bitsets are not stored in the database, so their spy images are only in the study\'s figures/ folder (gradient_spy_activations.png, clusters_activations_k*.png).')));
  }
  return h('div', {},
    h('h1', {}, 'Co-activation'),
    h('div', { class: 'controls' },
      select('source', sources.map((s) => [s, s]), source, (v) => go({ source: v })),
      select('k', ks.map((x) => [x, x]), k, (v) => go({ source, k: v, feature }))),
    h('div', { class: 'grid' }, cards),
    h('h2', {}, 'Block coherence'),
    coherence.rows.length ? table(coherence) : note('No coherence rows for this source.'),
    h('h2', {}, 'Clusterings of this source'),
    note('ari: adjusted Rand index against the same clustering with another seed (stability). Click a row to show its k.'),
    table({ columns: Object.keys(mine[0]), types: [], rows: mine.map((c) => Object.values(c)) },
      { onRow: (rec) => go({ source, k: rec.k }) }));
}
