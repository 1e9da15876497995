/**
 * Step `rlCharts`: the per-update logs of RL runs (the rl step's rl_log.jsonl) as Vega-Lite charts, rendered
 * to SVG with the report's chart code (src/report/charts.ts), with the spec beside it: mean reward, KL to
 * the reference, response length, clip fraction and the share of rollouts reaching `<output>` per update,
 * one line per run; and the functional tokens written per rollout, per run and tag. The run copies both
 * files into the run directory when it ends.
 *
 * Its inputs are the RL runs, named by their labels (`rlChartsStep(labels)`, wired by `addRlCharts`).
 * Output: rl_curves.svg, rl_curves.vl.json.
 */
import { Effect, Schema } from "effect";
import type { FileUnreadable, WriteFailed } from "../errors.ts";
import { readJsonl } from "../data/records.ts";
import { defineStep, type Step } from "../engine/step.ts";
import type { NodeRef, PipelineBuilder } from "../engine/pipeline.ts";
import { type RlPoint, rlSpec, writeChart } from "../report/charts.ts";
import type { RlLogRow } from "../train/rl_rollouts.ts";

/** The files the step writes and the run publishes. */
export const RL_CHART_FILES = ["rl_curves.svg", "rl_curves.vl.json"] as const;

/** The step's config: the RL runs' labels, which are also its input names. */
export const RlChartsConfig: Schema.Schema<RlChartsConfig> = Schema.Struct({
  labels: Schema.Array(Schema.String),
});
/** The `rlCharts` step's config as plain data. */
export interface RlChartsConfig {
  /** The RL runs' labels (the input names), in the charts' order. */
  readonly labels: ReadonlyArray<string>;
}

/** The panels, in order: log field and title. */
const METRICS: ReadonlyArray<readonly [keyof RlLogRow, string]> = [
  ["reward", "mean reward"],
  ["kl", "KL to reference"],
  ["length", "response length (tokens)"],
  ["clipFraction", "clip fraction"],
  ["outputShare", "share reaching <output>"],
];

/** The rlCharts step over RL runs whose inputs are named `labels`. */
export const rlChartsStep = (
  labels: ReadonlyArray<string>,
): Step<RlChartsConfig, string, FileUnreadable | WriteFailed> =>
  defineStep({
    name: "rlCharts",
    version: 1,
    description: "RL runs' per-update logs as charts",
    config: RlChartsConfig,
    inputs: labels,
    publishes: RL_CHART_FILES,
    run: (config, inputs, ctx) =>
      Effect.gen(function* () {
        const metrics: RlPoint[] = [], tags: RlPoint[] = [];
        for (const arm of config.labels) {
          const rows = yield* readJsonl<RlLogRow>(`${(inputs as Record<string, string>)[arm]}/rl_log.jsonl`);
          for (const r of rows) {
            for (const [field, metric] of METRICS) {
              metrics.push({ arm, update: r.update, metric, value: r[field] as number });
            }
            for (const [tag, value] of Object.entries(r.functionalTokens)) {
              tags.push({ arm, update: r.update, metric: tag, value });
            }
          }
        }
        const spec = rlSpec(metrics, tags, METRICS.map(([, m]) => m));
        yield* writeChart(ctx.dir, "rl_curves", spec);
        ctx.reporter.log(`[${ctx.node}] RL curves of ${config.labels.join(", ")}`);
      }),
  });

/** Adds the rlCharts node over `runs` (label -> rl node). */
export const addRlCharts = (
  p: PipelineBuilder,
  name: string,
  runs: Readonly<Record<string, NodeRef>>,
): NodeRef => {
  const labels = Object.keys(runs);
  return p.add(name, rlChartsStep(labels), { labels }, runs);
};
