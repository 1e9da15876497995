/**
 * Step `scalingChart`: test-time scaling as a Vega-Lite chart: each input is an evaluation with several
 * samples per prompt (src/steps/evaluate.ts), whose `majority_at` gives the majority vote's accuracy over
 * the first 1, 2, 4, ... samples; one line per model. Rendered to SVG with the report's chart code, the
 * spec beside it; the run copies both into the run directory.
 *
 * Its inputs are the evaluations, named by their labels (`scalingChartStep(labels)`, wired by
 * `addScalingChart`). With `models`, several labels draw one line (label -> line): the mean over them at
 * each n (the comparison's seeds). Output: scaling.svg, scaling.vl.json (or `file`.svg / .vl.json).
 */
import { Effect, Schema } from "effect";
import { type FileUnreadable, InvalidConfig, type WriteFailed } from "../errors.ts";
import { readJson } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import type { NodeRef, PipelineBuilder } from "../engine/pipeline.ts";
import { chartFiles, type ScalingPoint, scalingSpec, writeChart } from "../report/charts.ts";
import { meanBy } from "../report/stats.ts";

/** The chart's default file name (without extension): scaling.svg and scaling.vl.json. */
export const SCALING_CHART = "scaling";

/** The step's config: the models' labels, which are also its input names. */
export const ScalingChartConfig: Schema.Schema<ScalingChartConfig> = Schema.Struct({
  labels: Schema.Array(Schema.String),
  models: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  file: Schema.optional(Schema.String),
});
/** The `scalingChart` step's config as plain data. */
export interface ScalingChartConfig {
  /** The models' labels (the input names), in the chart's order. */
  readonly labels: ReadonlyArray<string>;
  /** The line each label belongs to (default: its own); a line is the mean of its labels at each n. */
  readonly models?: Readonly<Record<string, string>>;
  /** The chart's file name without extension (default SCALING_CHART). */
  readonly file?: string;
}

/** The scalingChart step over evaluations whose inputs are named `labels`. */
export const scalingChartStep = (
  labels: ReadonlyArray<string>,
  file?: string,
): Step<ScalingChartConfig, string, FileUnreadable | InvalidConfig | WriteFailed> =>
  defineStep({
    name: "scalingChart",
    version: 1,
    description: "majority-vote accuracy against the number of rollouts, as a chart",
    config: ScalingChartConfig,
    inputs: labels,
    publishes: chartFiles(file ?? SCALING_CHART),
    run: (config, inputs, ctx) =>
      Effect.gen(function* () {
        const points: ScalingPoint[] = [];
        for (const label of config.labels) {
          const dir = (inputs as Record<string, string>)[label];
          const metrics = (yield* readJson(`${dir}/metrics.json`)) as {
            majority_at?: Record<string, number>;
          };
          if (metrics.majority_at === undefined) {
            return yield* new InvalidConfig({
              where: `${ctx.node}.inputs.${label}`,
              reason: "an evaluation with one sample per prompt has no majority vote to chart",
            });
          }
          const model = config.models?.[label] ?? label;
          for (const [n, accuracy] of Object.entries(metrics.majority_at)) {
            points.push({ model, n: Number(n), accuracy });
          }
        }
        // A line is the mean of the labels that belong to it, at each n.
        const spec = scalingSpec(meanBy(points, "accuracy", (p) => JSON.stringify([p.model, p.n])));
        yield* writeChart(ctx.dir, config.file ?? SCALING_CHART, spec);
        ctx.reporter.log(`[${ctx.node}] test-time scaling of ${config.labels.join(", ")}`);
      }),
  });

/**
 * Adds the scalingChart node over `evals` (label -> evaluation node with several samples or rollouts);
 * `opts.models` groups labels into lines (their mean), `opts.file` names the chart's files.
 */
export const addScalingChart = (
  p: PipelineBuilder,
  name: string,
  evals: Readonly<Record<string, NodeRef>>,
  opts: { readonly models?: Readonly<Record<string, string>>; readonly file?: string } = {},
): NodeRef => {
  const labels = Object.keys(evals);
  return p.add(name, scalingChartStep(labels, opts.file), { labels, ...opts }, evals);
};
