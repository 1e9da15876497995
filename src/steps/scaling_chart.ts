/**
 * Step `scalingChart`: test-time scaling as a Vega-Lite chart: each input is an evaluation with several
 * samples per prompt (src/steps/evaluate.ts), whose `majority_at` gives the majority vote's accuracy over
 * the first 1, 2, 4, ... samples; one line per model. Rendered to SVG with the report's chart code, the
 * spec beside it; the run copies both into the run directory.
 *
 * Its inputs are the evaluations, named by their labels (`scalingChartStep(labels)`, wired by
 * `addScalingChart`). Output: scaling.svg, scaling.vl.json.
 */
import { Effect, Schema } from "effect";
import { type FileUnreadable, InvalidConfig, type WriteFailed } from "../errors.ts";
import { readJson } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import type { NodeRef, PipelineBuilder } from "../engine/pipeline.ts";
import { type ScalingPoint, scalingSpec, writeChart } from "../report/charts.ts";

/** The files the step writes and the run publishes. */
export const SCALING_CHART_FILES = ["scaling.svg", "scaling.vl.json"] as const;

/** The step's config: the models' labels, which are also its input names. */
export const ScalingChartConfig: Schema.Schema<ScalingChartConfig> = Schema.Struct({
  labels: Schema.Array(Schema.String),
});
/** The `scalingChart` step's config as plain data. */
export interface ScalingChartConfig {
  /** The models' labels (the input names), in the chart's order. */
  readonly labels: ReadonlyArray<string>;
}

/** The scalingChart step over evaluations whose inputs are named `labels`. */
export const scalingChartStep = (
  labels: ReadonlyArray<string>,
): Step<ScalingChartConfig, string, FileUnreadable | InvalidConfig | WriteFailed> =>
  defineStep({
    name: "scalingChart",
    version: 1,
    description: "majority-vote accuracy against the number of rollouts, as a chart",
    config: ScalingChartConfig,
    inputs: labels,
    publishes: SCALING_CHART_FILES,
    run: (config, inputs, ctx) =>
      Effect.gen(function* () {
        const points: ScalingPoint[] = [];
        for (const model of config.labels) {
          const dir = (inputs as Record<string, string>)[model];
          const metrics = (yield* readJson(`${dir}/metrics.json`)) as {
            majority_at?: Record<string, number>;
          };
          if (metrics.majority_at === undefined) {
            return yield* new InvalidConfig({
              where: `${ctx.node}.inputs.${model}`,
              reason: "an evaluation with one sample per prompt has no majority vote to chart",
            });
          }
          for (const [n, accuracy] of Object.entries(metrics.majority_at)) {
            points.push({ model, n: Number(n), accuracy });
          }
        }
        const spec = scalingSpec(points);
        yield* writeChart(ctx.dir, "scaling", spec);
        ctx.reporter.log(`[${ctx.node}] test-time scaling of ${config.labels.join(", ")}`);
      }),
  });

/** Adds the scalingChart node over `evals` (label -> evaluation node with several samples). */
export const addScalingChart = (
  p: PipelineBuilder,
  name: string,
  evals: Readonly<Record<string, NodeRef>>,
): NodeRef => {
  const labels = Object.keys(evals);
  return p.add(name, scalingChartStep(labels), { labels }, evals);
};
