/**
 * The comparison report as Markdown (report.md): the tables, the significance statement, links to the
 * chart SVGs written beside it, and a text form of the mask viewer (trained tokens in ⟦ ⟧).
 */
import type { Analysis } from "./analyse.ts";
import type { MaskView } from "./collect.ts";
import { identicalLines, methodNotes, modelColumns, signedPoints } from "./format.ts";

export interface ReportContent {
  readonly title: string;
  readonly analysis: Analysis;
  readonly masks: ReadonlyArray<MaskView>;
  /** Files of the charts next to the report, and the SVG markup the HTML inlines. */
  readonly charts: ReadonlyArray<{ readonly title: string; readonly file: string; readonly svg: string }>;
}

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** The first `textColumns` columns are left-aligned (names), the rest right-aligned (numbers). */
const table = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  textColumns = 2,
): string[] => [
  `| ${header.map(cell).join(" | ")} |`,
  `| ${header.map((_, i) => (i < textColumns ? "---" : "---:")).join(" | ")} |`,
  ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
];

/** The response of a masked example with every run of trained tokens wrapped in ⟦ ⟧. */
export const markTrained = (tokens: ReadonlyArray<string>, weights: ReadonlyArray<number>, from: number) => {
  let out = "";
  let open = false;
  for (let i = from; i < tokens.length; i++) {
    const on = (weights[i] ?? 0) > 0;
    if (on !== open) out += on ? "\u27e6" : "\u27e7";
    open = on;
    out += tokens[i].replace(/\n/g, "\u21b5");
  }
  return open ? `${out}\u27e7` : out;
};

export const reportMarkdown = (c: ReportContent): string => {
  const a = c.analysis;
  const lines: string[] = [`# ${c.title}`, ""];
  lines.push(...a.sentences.map((s) => `**${s}**`).flatMap((s) => [s, ""]));
  for (const note of a.notes) lines.push(`> ${note}`, "");
  for (const line of identicalLines(a)) lines.push(`> ${line}`, "");

  lines.push("## Accuracy and format rate (mean ± std over seeds)", "");
  for (const dataset of a.datasets) {
    const rows = a.rows.filter((r) => r.dataset === dataset);
    lines.push(`### ${dataset} (n = ${rows[0]?.n ?? 0} test examples)`, "");
    lines.push(
      ...table(modelColumns.map(([h]) => h), rows.map((r) => modelColumns.map(([, f]) => f(r)))),
      "",
    );
  }

  lines.push(
    `## Difference to ${a.baseline} (paired by seed, ${
      Math.round(100 * a.bootstrap.level)
    }% bootstrap interval)`,
    "",
  );
  lines.push(
    ...table(
      ["dataset", "model", "Δ accuracy (points)", "interval", "per seed", "significant"],
      a.comparisons.map((x) => [
        x.dataset,
        x.model,
        signedPoints(x.diff),
        `[${signedPoints(x.lo)}, ${signedPoints(x.hi)}]`,
        x.seeds.map((s, i) => `s${s}: ${signedPoints(x.perSeed[i])}`).join(", "),
        x.significant ? (x.lo > 0 ? "yes, better" : "yes, worse") : "no",
      ]),
    ),
    "",
  );
  for (const n of methodNotes(a)) lines.push(n, "");

  lines.push("## Charts", "");
  for (const chart of c.charts) lines.push(`### ${chart.title}`, "", `![${chart.title}](${chart.file})`, "");

  lines.push("## What each stage trains on", "");
  lines.push(
    "Trained tokens (weight > 0) are inside ⟦ ⟧; ↵ is a newline. report.html colours each token by its weight.",
    "",
  );
  for (const view of c.masks) {
    const ex = view.examples[0];
    if (!ex || ex.length === 0) continue;
    lines.push(`- **${view.method}** on ${view.dataset} (${ex[0].source}):`);
    for (const s of ex) {
      // A stage that trained on other rows (its own generations) shows one of them, named by its source.
      const other = s.source === ex[0].source ? "" : ` (${s.source})`;
      lines.push(
        `  - ${s.stage}${other}: \`${markTrained(s.tokens, s.weights, s.promptLength).replace(/`/g, "'")}\``,
      );
    }
  }
  lines.push("");
  return lines.join("\n");
};
