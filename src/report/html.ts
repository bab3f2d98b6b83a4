/**
 * The quantization report: one self-contained HTML file (inline CSS and SVG, a few lines of
 * script only to switch the histogram's layer; no network, no external files), so it can be
 * mailed, attached to CI runs or opened from disk. Same inputs give the same bytes: no dates.
 */
import type { ActivationHistogram } from './activations';
import type { LayerStatus, QuantAnalysis } from './analysis';
import type { OutputError, QuantJson } from './quant-json';

export interface ReportInput {
  quant: QuantJson;
  analysis?: QuantAnalysis | null;
  /** Heading; the model file name by default. */
  title?: string;
  /** Layer whose activation histogram shows first; the lowest-SQNR layer by default. */
  layer?: string;
}

const GOOD = '#2e7d32';
const FAIR = '#ef8f00';
const POOR = '#c62828';
const INK = '#263238';
const MUTED = '#78909c';

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** Short, stable number text: 4 significant digits, no trailing zeros. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return v > 0 ? '∞' : v < 0 ? '-∞' : 'NaN';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, 'e');
  return String(Number(v.toPrecision(4)));
}

/** Thousands grouped with thin spaces: 2 293 000. */
function count(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009');
}

function sqnrColor(db: number | null): string {
  if (db === null || db >= 30) return GOOD;
  return db >= 20 ? FAIR : POOR;
}

function cosineColor(c: number): string {
  if (c >= 0.999) return GOOD;
  return c >= 0.99 ? FAIR : POOR;
}

/** About `n` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    out.push(Number(t.toPrecision(12)));
  return out;
}

/** Tick label with as many decimals as the tick step needs (0.9998, 0.9999, 1 stay distinct). */
function tickText(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : Math.abs(v) || 1;
  const decimals = Math.max(0, Math.min(12, -Math.floor(Math.log10(step) + 1e-9)));
  return Math.abs(v) >= 1e6 ? v.toExponential(2) : v.toFixed(decimals);
}

interface Bar {
  label: string;
  /** Bar length in axis units; null draws a full bar (infinite SQNR). */
  value: number | null;
  text: string;
  color: string;
}

function barChart(o: {
  title: string;
  axis: string;
  bars: Bar[];
  min: number;
  max: number;
  cls: string;
}): string {
  const labelW = 150;
  const plotW = 300;
  const textW = 70;
  const rowH = 22;
  const top = 26;
  const height = top + o.bars.length * rowH + 36;
  const width = labelW + plotW + textW;
  const x = (v: number) =>
    labelW + ((Math.min(Math.max(v, o.min), o.max) - o.min) / (o.max - o.min || 1)) * plotW;
  const parts: string[] = [];
  parts.push(`<text x="0" y="16" class="chart-title">${escapeHtml(o.title)}</text>`);
  const ticks = niceTicks(o.min, o.max, 4);
  for (const t of ticks) {
    parts.push(
      `<line x1="${x(t)}" x2="${x(t)}" y1="${top - 4}" y2="${height - 32}" class="grid"/>`,
    );
    parts.push(
      `<text x="${x(t)}" y="${height - 18}" class="tick" text-anchor="middle">${tickText(t, ticks)}</text>`,
    );
  }
  o.bars.forEach((b, i) => {
    const y = top + i * rowH;
    const label = b.label.length > 22 ? `${b.label.slice(0, 21)}…` : b.label;
    const end = b.value === null ? labelW + plotW : x(b.value);
    parts.push(
      `<g class="${o.cls}"><title>${escapeHtml(`${b.label}: ${b.text}`)}</title>` +
        `<text x="${labelW - 6}" y="${y + 15}" text-anchor="end" class="label">${escapeHtml(label)}</text>` +
        `<rect x="${labelW}" y="${y + 3}" width="${Math.max(1, end - labelW).toFixed(1)}" height="${rowH - 7}" fill="${b.color}" rx="2"/>` +
        `<text x="${labelW + plotW + 6}" y="${y + 15}" class="value">${escapeHtml(b.text)}</text></g>`,
    );
  });
  parts.push(
    `<text x="${labelW + plotW / 2}" y="${height - 2}" class="axis" text-anchor="middle">${escapeHtml(o.axis)}</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">${parts.join('')}</svg>`;
}

/**
 * Axis floor for cosine bars: the largest of 0, 0.9, 0.99, ... that still leaves the worst
 * layer's bar at least 30 % long, so small differences show without hiding the worst layer.
 */
function cosineFloor(values: number[]): number {
  const worst = Math.min(...values, 1);
  let floor = 0;
  for (const f of [0.9, 0.99, 0.999, 0.9999, 0.99999]) if ((worst - f) / (1 - f) >= 0.3) floor = f;
  return floor;
}

function errorCharts(quant: QuantJson): string {
  const rows = Object.entries(quant.layers).filter(([, l]) => l.output_error);
  if (rows.length === 0) {
    return '<p class="note">quant.json holds no per-layer error figures (calibration kept no sample batch), so there is nothing to chart.</p>';
  }
  const cos = rows.map(([, l]) => l.output_error!.cosine);
  const floor = cosineFloor(cos);
  const sq = rows.map(([, l]) => l.output_error!.sqnr_db).filter((v): v is number => v !== null);
  const maxDb = Math.max(10, ...sq.map((v) => Math.ceil(v / 10) * 10));
  const cosine = barChart({
    title: 'Cosine similarity, fake-quant vs float',
    axis: floor > 0 ? `cosine (axis starts at ${floor})` : 'cosine',
    min: floor,
    max: 1,
    cls: 'bar-cosine',
    bars: rows.map(([name, l]) => ({
      label: name,
      value: l.output_error!.cosine,
      text: l.output_error!.cosine.toFixed(6),
      color: cosineColor(l.output_error!.cosine),
    })),
  });
  const sqnr = barChart({
    title: 'SQNR (dB), higher is better',
    axis: 'signal-to-quantization-noise ratio, dB',
    min: 0,
    max: maxDb,
    cls: 'bar-sqnr',
    bars: rows.map(([name, l]) => {
      const db = l.output_error!.sqnr_db;
      return {
        label: name,
        value: db === null ? null : Math.max(0, db),
        text: db === null ? '∞ dB' : `${db.toFixed(1)} dB`,
        color: sqnrColor(db),
      };
    }),
  });
  return (
    `<div class="charts">${cosine}${sqnr}</div>` +
    `<p class="legend"><span style="color:${GOOD}">■</span> SQNR ≥ 30 dB / cosine ≥ 0.999 ` +
    `<span style="color:${FAIR}">■</span> 20–30 dB / ≥ 0.99 <span style="color:${POOR}">■</span> below. ` +
    `${escapeHtml(quant.error_metric ?? '')}</p>`
  );
}

export function histogramSvg(h: ActivationHistogram, layer: string): string {
  const W = 640;
  const H = 270;
  const l = 56;
  const r = 16;
  const t = 28;
  const b = 46;
  const pw = W - l - r;
  const ph = H - t - b;
  const [lo, hi] = h.range;
  const x = (v: number) => l + ((v - lo) / (hi - lo)) * pw;
  const maxCount = Math.max(1, ...h.bins);
  // log scale: post-ReLU activations pile up at 0, a linear axis would hide the tail
  const y = (c: number) => t + ph - (Math.log10(1 + c) / Math.log10(1 + maxCount)) * ph;
  const bw = (hi - lo) / h.bins.length;
  const parts: string[] = [];
  parts.push(
    `<text x="${l}" y="16" class="chart-title">${escapeHtml(`Input activation of ${layer} (${h.blob})`)}</text>`,
  );
  parts.push(
    `<rect x="${x(h.clip[0]).toFixed(1)}" y="${t}" width="${(x(h.clip[1]) - x(h.clip[0])).toFixed(1)}" height="${ph}" class="clip-band"/>`,
  );
  h.bins.forEach((c, i) => {
    if (c === 0) return;
    const v0 = lo + i * bw;
    const mid = v0 + bw / 2;
    const inside = mid >= h.clip[0] && mid <= h.clip[1];
    const x0 = x(v0);
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${y(c).toFixed(1)}" width="${Math.max(0.5, x(v0 + bw) - x0 - 0.5).toFixed(1)}" ` +
        `height="${(t + ph - y(c)).toFixed(1)}" class="${inside ? 'hist-in' : 'hist-out'}"><title>[${fmt(v0)}, ${fmt(v0 + bw)}): ${c}</title></rect>`,
    );
  });
  // labels inside the band, on two rows, so they neither leave the plot nor overlap when narrow
  for (const [v, anchor, name, row] of [
    [h.clip[0], 'start', 'clip min', 0],
    [h.clip[1], 'end', 'clip max', 1],
  ] as const) {
    const xv = x(v);
    parts.push(
      `<line x1="${xv.toFixed(1)}" x2="${xv.toFixed(1)}" y1="${t}" y2="${t + ph}" class="clip-line"/>`,
    );
    const tx = xv + (anchor === 'start' ? 4 : -4);
    parts.push(
      `<text x="${tx.toFixed(1)}" y="${t + 12 + 14 * row}" text-anchor="${anchor}" class="clip-text">${name} ${fmt(v)}</text>`,
    );
  }
  const ticks = niceTicks(lo, hi, 6);
  for (const tv of ticks) {
    parts.push(
      `<line x1="${x(tv).toFixed(1)}" x2="${x(tv).toFixed(1)}" y1="${t + ph}" y2="${t + ph + 4}" class="axis-line"/>`,
    );
    parts.push(
      `<text x="${x(tv).toFixed(1)}" y="${t + ph + 16}" text-anchor="middle" class="tick">${tickText(tv, ticks)}</text>`,
    );
  }
  parts.push(`<line x1="${l}" x2="${l + pw}" y1="${t + ph}" y2="${t + ph}" class="axis-line"/>`);
  parts.push(
    `<text x="${l + pw / 2}" y="${H - 6}" text-anchor="middle" class="axis">activation value</text>`,
  );
  parts.push(
    `<text x="14" y="${t + ph / 2}" text-anchor="middle" class="axis" transform="rotate(-90 14 ${t + ph / 2})">count (log scale)</text>`,
  );
  parts.push(
    `<text x="${l - 4}" y="${t + 4}" text-anchor="end" class="tick">${count(maxCount)}</text>`,
  );
  parts.push(`<text x="${l - 4}" y="${t + ph}" text-anchor="end" class="tick">0</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" class="histogram">${parts.join('')}</svg>`;
}

function pickLayer(input: ReportInput, acts: Record<string, ActivationHistogram>): string | null {
  const names = Object.keys(acts);
  if (names.length === 0) return null;
  if (input.layer && acts[input.layer]) return input.layer;
  let worst: string | null = null;
  let worstDb = Infinity;
  for (const n of names) {
    const db = input.quant.layers[n]?.output_error?.sqnr_db;
    if (typeof db === 'number' && db < worstDb) {
      worstDb = db;
      worst = n;
    }
  }
  return worst ?? names[0]!;
}

function histogramSection(input: ReportInput): string {
  const acts = input.analysis?.activations ?? {};
  const chosen = pickLayer(input, acts);
  if (!chosen) {
    return '<p class="note">No activation histograms: open a report written by <code>amct quantize</code> (it saves <code>{p}_analysis.json</code> beside quant.json).</p>';
  }
  const names = Object.keys(acts);
  const options = names
    .map(
      (n) =>
        `<option value="${escapeHtml(n)}"${n === chosen ? ' selected' : ''}>${escapeHtml(n)}</option>`,
    )
    .join('');
  const figures = names
    .map((n) => {
      const h = acts[n]!;
      const caption =
        `clip range [${fmt(h.clip[0])}, ${fmt(h.clip[1])}] from scale_d ${fmt(h.scaleD)}, offset_d ${h.offsetD} (${h.numBits}-bit); ` +
        `data range [${fmt(h.min)}, ${fmt(h.max)}]; ${(100 * h.clippedFraction).toFixed(3)} % of ${count(h.count)} values saturate.`;
      return `<figure data-layer="${escapeHtml(n)}"${n === chosen ? '' : ' hidden'}>${histogramSvg(h, n)}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
    })
    .join('');
  return `<label>Layer <select id="layer-select">${options}</select></label>${figures}`;
}

function errorText(e: OutputError | undefined): string {
  if (!e) return '–';
  return `${e.cosine.toFixed(6)} / ${e.sqnr_db === null ? '∞' : e.sqnr_db.toFixed(1)} dB`;
}

function summarySection(input: ReportInput): string {
  const q = input.quant;
  const a = input.analysis;
  const rows: [string, string][] = [];
  if (a) {
    const m = a.model;
    rows.push([
      'model',
      `${m.file}${m.weightsFile ? ` + ${m.weightsFile}` : ''} (${m.format}${m.opset ? `, opset ${m.opset}` : ''})`,
    ]);
    rows.push([
      'inputs',
      m.inputs
        .map((i) => `${i.name} ${i.dtype}[${(i.shape ?? []).map((d) => d ?? '?').join(', ')}]`)
        .join('; '),
    ]);
    rows.push([
      'nodes',
      `${m.nodeCount} (${Object.entries(m.opCounts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`,
    ]);
    rows.push(['parameters', count(m.params)]);
    if (m.macs !== null)
      rows.push([
        'compute',
        `${count(m.macs)} MACs = ${count(m.flops ?? 0)} FLOPs per ${m.batch === 1 ? 'sample' : `batch of ${m.batch}`}`,
      ]);
    if (a.calibration)
      rows.push([
        'calibration',
        `${a.calibration.batches} batch(es) of ${a.calibration.batchSize} from ${a.calibration.source}`,
      ]);
  }
  const n = Object.keys(q.layers).length;
  const skipped = a ? a.layers.filter((l) => l.status !== 'quantized').length : null;
  rows.push(['quantized layers', `${n}${skipped !== null ? `, ${skipped} left in float` : ''}`]);
  for (const [name, e] of Object.entries(q.network_outputs ?? {}))
    rows.push([`output ${name}`, `cosine / SQNR ${errorText(e)}`]);
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`;
}

function layerTable(input: ReportInput): string {
  const acts = input.analysis?.activations ?? {};
  const head =
    '<tr><th>layer</th><th>algo</th><th>scale_d</th><th>offset_d</th><th>weight bits</th><th>clip range</th><th>saturated</th><th>cosine / SQNR</th></tr>';
  const body = Object.entries(input.quant.layers)
    .map(([name, l]) => {
      const h = acts[name];
      const cells = [
        name,
        l.act_algo ?? '–',
        l.scale_d !== undefined ? fmt(l.scale_d) : '–',
        l.offset_d !== undefined ? String(l.offset_d) : '–',
        l.weight_bits !== undefined ? String(l.weight_bits) : '–',
        h ? `[${fmt(h.clip[0])}, ${fmt(h.clip[1])}]` : '–',
        h ? `${(100 * h.clippedFraction).toFixed(3)} %` : '–',
        errorText(l.output_error),
      ];
      return `<tr>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
    })
    .join('');
  return `<table class="grid-table">${head}${body}</table>`;
}

function skippedSection(layers: LayerStatus[] | undefined): string {
  if (!layers)
    return '<p class="note">Layer verdicts need <code>{p}_analysis.json</code> (written by <code>amct quantize</code>).</p>';
  const left = layers.filter((l) => l.status !== 'quantized');
  if (left.length === 0)
    return '<p class="note">Every layer of a quantizable type was quantized.</p>';
  const rows = left
    .map(
      (l) =>
        `<tr><td>${escapeHtml(l.name)}</td><td>${escapeHtml(l.type)}</td><td>${l.status}</td><td>${escapeHtml(l.reason ?? '')}</td></tr>`,
    )
    .join('');
  return `<table class="grid-table skipped"><tr><th>layer</th><th>type</th><th>status</th><th>why</th></tr>${rows}</table>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:${INK};margin:0;background:#f5f7f8}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 12px}
section{background:#fff;border:1px solid #dde3e6;border-radius:6px;padding:16px 20px;margin:16px 0}
.sub{color:${MUTED};margin:0}.note{color:${MUTED}}
table{border-collapse:collapse}th,td{text-align:left;padding:4px 10px;vertical-align:top}
.kv th{color:${MUTED};font-weight:500;white-space:nowrap}
.grid-table{width:100%}.grid-table th{border-bottom:2px solid #dde3e6}.grid-table td{border-bottom:1px solid #eef1f3;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:24px}
.chart-title{font-weight:600;font-size:13px;fill:${INK}}.label,.value{font-size:12px;fill:${INK}}
.tick{font-size:11px;fill:${MUTED}}.axis{font-size:11px;fill:${MUTED}}
.grid{stroke:#eceff1}.axis-line{stroke:${MUTED}}
.clip-band{fill:#e3f2fd}.clip-line{stroke:#0d47a1;stroke-dasharray:4 3}.clip-text{font-size:11px;fill:#0d47a1;paint-order:stroke;stroke:#fff;stroke-width:3px}
.hist-in{fill:#1565c0}.hist-out{fill:${POOR}}
figure{margin:8px 0}figcaption{color:${MUTED};font-size:12px}
.legend{font-size:12px;color:${MUTED}}select{font:inherit}
`;

const SCRIPT = `(function(){var s=document.getElementById('layer-select');if(!s)return;
s.addEventListener('change',function(){var f=document.querySelectorAll('figure[data-layer]');
for(var i=0;i<f.length;i++){f[i].hidden=f[i].getAttribute('data-layer')!==s.value;}});})();`;

/** The report page (see module comment). */
export function renderReportHtml(input: ReportInput): string {
  const file = input.analysis?.model.file ?? '';
  const title =
    input.title ??
    (file ? `Quantization report: ${file.split(/[\\/]/).pop()}` : 'Quantization report');
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title><style>${CSS}</style></head><body><main>`,
    `<h1>${escapeHtml(title)}</h1><p class="sub">amct-ts post-training INT8 quantization</p>`,
    `<section id="summary"><h2>Model</h2>${summarySection(input)}</section>`,
    `<section id="errors"><h2>Per-layer error</h2>${errorCharts(input.quant)}</section>`,
    `<section id="histogram"><h2>Activation histogram and clip range</h2>${histogramSection(input)}</section>`,
    `<section id="skipped"><h2>Layers left in float</h2>${skippedSection(input.analysis?.layers)}</section>`,
    `<section id="layers"><h2>Quantized layers</h2>${layerTable(input)}</section>`,
    `</main><script>${SCRIPT}</script></body></html>`,
    '',
  ].join('\n');
}
