/**
 * Self-contained SVG bar charts: no script, no web font, no CDN, so they open
 * offline in any browser and render inline on GitHub.
 */

export const COLORS = {
  ours: '#2563eb', // atomic-pace
  floor: '#64748b', // bare GCRA floor
  peer: '#f59e0b', // in-process libraries
  slow: '#dc2626', // postMessage / IPC / naive designs
  alt: '#10b981',
  muted: '#cbd5e1',
};

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function wrap(text, width) {
  const lines = [];
  let line = '';
  for (const word of String(text).split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** Compact axis label for a rate: 100/s, 10k/s, 1M/s. */
export function axisRate(v) {
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(3)}M/s`;
  if (v >= 1e3) return `${+(v / 1e3).toPrecision(3)}k/s`;
  return `${+v.toPrecision(3)}/s`;
}

function niceMax(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/**
 * Horizontal bar chart.
 * @param {object} spec
 * @param {string} spec.title
 * @param {string} [spec.subtitle]
 * @param {Array<{label: string, value?: number, color?: string, text?: string} | {heading: string}>} spec.rows
 * @param {boolean} [spec.log] log-scale axis (for values spanning decades)
 * @param {(v: number) => string} spec.format value labels (and axis labels unless axisFormat)
 * @param {(v: number) => string} [spec.axisFormat] axis labels
 * @param {number} [spec.min] axis start for a linear axis (default 0)
 * @param {{value: number, label: string}} [spec.reference] a dashed vertical line (a target)
 * @param {string} [spec.footer]
 */
export function barChart(spec) {
  const width = 900;
  const labelW = 350;
  const valueW = 110;
  const barX = labelW + 10;
  const barW = width - barX - valueW;
  const rowH = 22;
  const subtitleLines = spec.subtitle ? wrap(spec.subtitle, 120) : [];
  const headH = 40 + subtitleLines.length * 16;
  const axisH = 26;
  const footH = spec.footer ? 22 : 6;
  const height = headH + spec.rows.length * rowH + axisH + footH;
  const values = spec.rows.filter((r) => r.value !== undefined && Number.isFinite(r.value) && r.value > 0).map((r) => r.value);
  if (spec.reference) values.push(spec.reference.value);
  const vmax = Math.max(...values, 1e-9);
  const vmin = Math.min(...values, vmax);
  let x;
  let ticks;
  if (spec.log) {
    const lo = 10 ** Math.floor(Math.log10(vmin));
    const hi = 10 ** Math.ceil(Math.log10(vmax));
    const span = Math.log10(hi) - Math.log10(lo) || 1;
    x = (v) => barX + (barW * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / span;
    ticks = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  } else {
    const lo = spec.min ?? 0;
    const hi = niceMax(vmax);
    x = (v) => barX + (barW * (Math.min(Math.max(v, lo), hi) - lo)) / (hi - lo);
    ticks = Array.from({ length: 6 }, (_, i) => lo + ((hi - lo) * i) / 5);
  }
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="600" fill="#0f172a">${esc(spec.title)}</text>`);
  subtitleLines.forEach((line, i) => out.push(`<text x="12" y="${42 + i * 16}" fill="#475569">${esc(line)}</text>`));
  const plotTop = headH;
  const plotBottom = headH + spec.rows.length * rowH;
  for (const t of ticks) {
    const tx = x(t).toFixed(1);
    out.push(`<line x1="${tx}" y1="${plotTop - 4}" x2="${tx}" y2="${plotBottom}" stroke="#e2e8f0"/>`);
    out.push(`<text x="${tx}" y="${plotBottom + 16}" text-anchor="middle" fill="#64748b" font-size="11">${esc((spec.axisFormat ?? spec.format)(t))}</text>`);
  }
  spec.rows.forEach((row, i) => {
    const y = plotTop + i * rowH;
    if ('heading' in row) {
      out.push(`<text x="12" y="${y + 15}" font-weight="600" fill="#0f172a">${esc(row.heading)}</text>`);
      return;
    }
    out.push(`<text x="${labelW}" y="${y + 15}" text-anchor="end" fill="#1e293b">${esc(row.label)}</text>`);
    const ok = row.value !== undefined && Number.isFinite(row.value) && row.value > 0;
    if (ok) {
      const w = Math.max(1, x(row.value) - barX);
      out.push(`<rect x="${barX}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" rx="2" fill="${row.color ?? COLORS.ours}"><title>${esc(row.label)}: ${esc(row.text ?? spec.format(row.value))}</title></rect>`);
      out.push(`<text x="${(barX + w + 6).toFixed(1)}" y="${y + 15}" fill="#0f172a">${esc(row.text ?? spec.format(row.value))}</text>`);
    } else {
      out.push(`<text x="${barX + 6}" y="${y + 15}" fill="#94a3b8">${esc(row.text ?? 'n/a')}</text>`);
    }
  });
  if (spec.reference) {
    const rx = x(spec.reference.value).toFixed(1);
    out.push(`<line x1="${rx}" y1="${plotTop - 4}" x2="${rx}" y2="${plotBottom}" stroke="#dc2626" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${rx}" y="${plotTop - 7}" text-anchor="middle" fill="#dc2626" font-size="11">${esc(spec.reference.label)}</text>`);
  }
  if (spec.footer) out.push(`<text x="12" y="${height - 8}" fill="#64748b" font-size="11">${esc(spec.footer)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
