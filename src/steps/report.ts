/**
 * Step `report`: the comparison report of a pipeline that runs several methods over seeds and datasets.
 *
 * Its inputs are the artifacts it reads (every evaluation, every node of every method run, the masks the
 * stages trained on, the tokenizers), each under its node's name, and its config is the layout saying
 * which node belongs to which dataset, seed and method. Being a step, the report is cached like the rest:
 * it is rebuilt only when one of those artifacts (or the layout) changes.
 *
 * Output: report.md, report.html (self-contained), report.json (the numbers), accuracy.svg and loss.svg;
 * all of them are published into the run directory when the run ends.
 */
import { Effect, Schema } from "effect";
import { defineStep } from "../engine/step.ts";
import type { NodeRef, PipelineBuilder } from "../engine/pipeline.ts";
import { readText, writeFileAtomic } from "../io/fs.ts";
import { analyse } from "../report/analyse.ts";
import { accuracySpec, type LossPoint, lossSpec, renderSvg, scopeSvgIds } from "../report/charts.ts";
import { collect, type Collected } from "../report/collect.ts";
import { reportHtml } from "../report/report_html.ts";
import { type ReportContent, reportMarkdown } from "../report/report_md.ts";

const RunNode = Schema.Struct({
  input: Schema.String,
  label: Schema.String,
  data: Schema.optional(Schema.String),
  after: Schema.Array(Schema.String),
});

const RunLayout = Schema.Struct({
  dataset: Schema.String,
  method: Schema.String,
  seed: Schema.Int,
  nodes: Schema.Array(RunNode),
  models: Schema.Array(
    Schema.Struct({ model: Schema.String, eval: Schema.String, nodes: Schema.Array(Schema.String) }),
  ),
});

export const ReportConfig = Schema.Struct({
  title: Schema.String,
  /** Label of the model every other model is compared with (per seed). */
  baseline: Schema.String,
  datasets: Schema.Array(
    Schema.Struct({ name: Schema.String, format: Schema.String, tokenizer: Schema.String }),
  ),
  runs: Schema.Array(RunLayout),
  bootstrap: Schema.Struct({
    resamples: Schema.Int.pipe(Schema.positive()),
    seed: Schema.Int,
    level: Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(1)),
  }),
  /** Training examples shown per method and dataset in the mask viewer. */
  maskExamples: Schema.Int.pipe(Schema.nonNegative()),
  /**
   * Charts other nodes drew (RL curves, test-time scaling), shown after the report's own: the node, its
   * SVG file (which that node publishes into the run directory) and a title.
   */
  charts: Schema.optional(
    Schema.Array(Schema.Struct({ node: Schema.String, file: Schema.String, title: Schema.String })),
  ),
});
export type ReportConfig = typeof ReportConfig.Type;

export const REPORT_FILES = ["report.md", "report.html", "report.json", "accuracy.svg", "loss.svg"] as const;

/** Every artifact the layout refers to: the step's inputs. */
export const reportInputs = (config: ReportConfig): string[] => [
  ...new Set([
    ...config.datasets.map((d) => d.tokenizer),
    ...config.runs.flatMap((r) => [
      ...r.nodes.flatMap((n) => (n.data ? [n.input, n.data] : [n.input])),
      ...r.models.map((m) => m.eval),
    ]),
    ...(config.charts ?? []).map((c) => c.node),
  ]),
];

/** A report step whose inputs are the artifacts `config` names. */
export const reportStep = (inputs: ReadonlyArray<string>) =>
  defineStep({
    name: "report",
    version: 1,
    description: "compare methods over seeds and datasets: tables, bootstrap intervals, charts, mask viewer",
    config: ReportConfig,
    inputs,
    publishes: REPORT_FILES,
    run: (config, dirs, ctx) =>
      Effect.gen(function* () {
        const collected = yield* collect(config.datasets, config.runs, (n) => dirs[n]!, config.maskExamples);
        const analysis = analyse(collected, config.baseline, config.bootstrap);
        const order = [...new Set(collected.models.map((m) => m.model))];
        const charts = [
          {
            title: "Accuracy per model (bar: mean over seeds, whisker: ± std, dots: seeds)",
            file: "accuracy.svg",
            svg: yield* Effect.promise(() => renderSvg(accuracySpec(collected.models, order))),
          },
          {
            title: "Training loss per stage",
            file: "loss.svg",
            svg: yield* Effect.promise(() =>
              renderSvg(lossSpec(lossPoints(collected), [...new Set(collected.models.map((m) => m.method))]))
            ),
          },
        ];
        for (const chart of charts) yield* writeFileAtomic(`${ctx.dir}/${chart.file}`, chart.svg);
        // Other nodes' charts are shown, not copied: those nodes publish their files themselves.
        for (const c of config.charts ?? []) {
          const svg = yield* readText(`${dirs[c.node]!}/${c.file}`);
          charts.push({ title: c.title, file: c.file, svg });
        }
        const content: ReportContent = { title: config.title, analysis, masks: collected.masks, charts };
        yield* writeFileAtomic(`${ctx.dir}/report.md`, reportMarkdown(content));
        const inlined = charts.map((c) => ({ ...c, svg: scopeSvgIds(c.svg, c.file.replace(/\W/g, "-")) }));
        yield* writeFileAtomic(`${ctx.dir}/report.html`, reportHtml({ ...content, charts: inlined }));
        const perSeed = collected.models.map(({ correct: _c, sources: _s, ...m }) => m);
        yield* writeFileAtomic(
          `${ctx.dir}/report.json`,
          JSON.stringify({ ...analysis, models: perSeed }, null, 2) + "\n",
        );
        for (const s of analysis.sentences) ctx.reporter.log(`[${ctx.node}] ${s}`);
      }),
  });

/** Loss curves averaged over seeds, at most `maxPoints` points per curve (every k-th step). */
export const lossPoints = (collected: Collected, maxPoints = 300): LossPoint[] => {
  const sums = new Map<string, LossPoint & { sum: number; n: number }>();
  for (const run of collected.runs) {
    for (const stage of run.stages) {
      const every = Math.max(1, Math.ceil(stage.losses.length / maxPoints));
      for (const [i, r] of stage.losses.entries()) {
        if (i % every !== 0 && i !== stage.losses.length - 1) continue;
        const step = stage.offset + r.step;
        const k = JSON.stringify([run.dataset, run.method, stage.label, step]);
        const e = sums.get(k) ??
          { dataset: run.dataset, method: run.method, stage: stage.label, step, loss: 0, sum: 0, n: 0 };
        e.sum += r.loss;
        e.n += 1;
        sums.set(k, e);
      }
    }
  }
  return [...sums.values()].map(({ sum, n, ...e }) => ({ ...e, loss: sum / n }));
};

/** Adds the report node: its inputs are wired from the node names the layout refers to. */
export const addReport = (p: PipelineBuilder, name: string, config: ReportConfig): NodeRef => {
  const inputs = reportInputs(config);
  return p.add(name, reportStep(inputs), config, Object.fromEntries(inputs.map((n) => [n, { node: n }])));
};
