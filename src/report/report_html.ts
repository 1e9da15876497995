/**
 * The comparison report as one self-contained HTML page (report.html): inline CSS, the charts as inline
 * SVG, the mask viewer; no script, no font or stylesheet from the network, so it opens offline and as an
 * e-mail attachment the same way.
 */
import { identicalLines, methodNotes, modelColumns, signedPoints } from "./format.ts";
import { escapeHtml, MASK_VIEWER_CSS, maskViewerHtml } from "./mask_viewer.ts";
import type { ReportContent } from "./report_md.ts";

const CSS = `
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1180px; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 8px; }
h2 { font-size: 19px; margin-top: 30px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
h4 { font-size: 14px; margin: 14px 0 6px; }
p.verdict { background: #f4f7fb; border-left: 4px solid #4c78a8; padding: 8px 12px; margin: 6px 0; }
p.note { color: #a15c00; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th { background: #f5f5f5; }
th.text, td.text { text-align: left; }
td.better { color: #1a7f37; font-weight: bold; }
td.worse { color: #c0392b; font-weight: bold; }
.small { font-size: 12px; color: #555; max-width: 900px; }
figure { margin: 8px 0 18px; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
${MASK_VIEWER_CSS}`;

/** `textColumns` are left-aligned (names), the others right-aligned (numbers). */
const tableHtml = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<{ text: string; cls?: string }>>,
  textColumns: number,
): string =>
  `<table><thead><tr>${
    header.map((h, i) => `<th${i < textColumns ? ` class="text"` : ""}>${escapeHtml(h)}</th>`).join("")
  }</tr></thead><tbody>` +
  rows.map((r) =>
    `<tr>${r.map((c) => `<td${c.cls ? ` class="${c.cls}"` : ""}>${escapeHtml(c.text)}</td>`).join("")}</tr>`
  ).join("") +
  `</tbody></table>`;

export const reportHtml = (c: ReportContent): string => {
  const a = c.analysis;
  const body: string[] = [`<h1>${escapeHtml(c.title)}</h1>`];
  body.push(...a.sentences.map((s) => `<p class="verdict">${escapeHtml(s)}</p>`));
  body.push(...a.notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`));
  body.push(...identicalLines(a).map((n) => `<p class="note">${escapeHtml(n)}</p>`));

  body.push(`<h2 id="accuracy">Accuracy and format rate (mean ± std over seeds)</h2>`);
  for (const dataset of a.datasets) {
    const rows = a.rows.filter((r) => r.dataset === dataset);
    body.push(`<h3>${escapeHtml(dataset)} <small>(n = ${rows[0]?.n ?? 0} test examples)</small></h3>`);
    body.push(tableHtml(
      modelColumns.map(([h]) => h),
      rows.map((r) => modelColumns.map(([, f], i) => ({ text: f(r), cls: i < 2 ? "text" : undefined }))),
      2,
    ));
  }

  body.push(
    `<h2 id="differences">Difference to ${escapeHtml(a.baseline)} <small>(paired by seed, ` +
      `${Math.round(100 * a.bootstrap.level)}% bootstrap interval)</small></h2>`,
  );
  body.push(tableHtml(
    ["dataset", "model", "Δ accuracy (points)", "interval", "per seed", "significant"],
    a.comparisons.map((x) => {
      const cls = x.significant ? (x.lo > 0 ? "better" : "worse") : undefined;
      return [
        { text: x.dataset, cls: "text" },
        { text: x.model, cls: "text" },
        { text: signedPoints(x.diff), cls },
        { text: `[${signedPoints(x.lo)}, ${signedPoints(x.hi)}]`, cls },
        { text: x.seeds.map((s, i) => `s${s}: ${signedPoints(x.perSeed[i])}`).join(", ") },
        { text: x.significant ? (x.lo > 0 ? "yes, better" : "yes, worse") : "no", cls },
      ];
    }),
    2,
  ));
  body.push(...methodNotes(a).map((n) => `<p class="small">${escapeHtml(n)}</p>`));

  body.push(`<h2 id="charts">Charts</h2>`);
  for (const chart of c.charts) {
    body.push(`<h3>${escapeHtml(chart.title)}</h3><figure>${chart.svg}</figure>`);
  }

  body.push(`<h2 id="masks">What each stage trains on</h2>`);
  body.push(
    `<p class="small">A few training examples, token by token; each line is one stage of the method, each ` +
      `token coloured by the loss weight that stage put on it (hover for the weight). Uncoloured response ` +
      `tokens carry weight 0; ↵ is a newline.</p>`,
  );
  body.push(maskViewerHtml(c.masks));

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(c.title)}</title>
<style>${CSS}</style></head>
<body>
${body.join("\n")}
</body></html>
`;
};
