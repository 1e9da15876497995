/**
 * Step `rlCharts`: the per-update logs of RL runs (the rl step's rl_log.jsonl) as Vega-Lite charts, rendered
 * to SVG with the report's chart code (src/report/charts.ts), with the spec beside it: mean reward, KL to
 * the reference, response length, clip fraction and the share of rollouts reaching `<output>` per update,
 * one line per run; and the functional tokens written per rollout, per run and tag. The run copies both
 * files into the run directory when it ends.
 *
 * Its inputs are the RL runs, named by their labels (`rlChartsStep(labels)`, wired by `addRlCharts`).
 * With `arms`, several labels draw one line (label -> arm): the mean over them at each update (the
 * comparison's seeds). Output: rl_curves.svg, rl_curves.vl.json (or `file`.svg / .vl.json).
 */
import { Effect, Schema } from "effect";
import type { FileUnreadable, WriteFailed } from "../errors.ts";
import { readJsonl } from "../data/records.ts";
import { defineStep, type Step } from "../engine/step.ts";
import type { NodeRef, PipelineBuilder } from "../engine/pipeline.ts";
import { chartFiles, type RlPoint, rlSpec, writeChart } from "../report/charts.ts";
import { meanBy } from "../report/stats.ts";
import type { RlLogRow } from "../train/rl_rollouts.ts";

/** The chart's default file name (without extension): rl_curves.svg and rl_curves.vl.json. */
export const RL_CHART = "rl_curves";

/** The step's config: the RL runs' labels, which are also its input names. */
export const RlChartsConfig: Schema.Schema<RlChartsConfig> = Schema.Struct({
  labels: Schema.Array(Schema.String),
  arms: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  file: Schema.optional(Schema.String),
});
/** The `rlCharts` step's config as plain data. */
export interface RlChartsConfig {
  /** The RL runs' labels (the input names), in the charts' order. */
  readonly labels: ReadonlyArray<string>;
  /** The line each label belongs to (default: its own); a line is the mean of its labels per update. */
  readonly arms?: Readonly<Record<string, string>>;
  /** The chart's file name without extension (default RL_CHART). */
  readonly file?: string;
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
  file?: string,
): Step<RlChartsConfig, string, FileUnreadable | WriteFailed> =>
  defineStep({
    name: "rlCharts",
    version: 1,
    description: "RL runs' per-update logs as charts",
    config: RlChartsConfig,
    inputs: labels,
    publishes: chartFiles(file ?? RL_CHART),
    run: (config, inputs, ctx) =>
      Effect.gen(function* () {
        const metrics: RlPoint[] = [], tags: RlPoint[] = [];
        for (const label of config.labels) {
          const rows = yield* readJsonl<RlLogRow>(
            `${(inputs as Record<string, string>)[label]}/rl_log.jsonl`,
          );
          const arm = config.arms?.[label] ?? label;
          for (const r of rows) {
            for (const [field, metric] of METRICS) {
              metrics.push({ arm, update: r.update, metric, value: r[field] as number });
            }
            for (const [tag, value] of Object.entries(r.functionalTokens)) {
              tags.push({ arm, update: r.update, metric: tag, value });
            }
          }
        }
        // A line is the mean of the labels that belong to it, per update and panel.
        const line = (p: RlPoint) => JSON.stringify([p.arm, p.update, p.metric]);
        const spec = rlSpec(
          meanBy(metrics, "value", line),
          meanBy(tags, "value", line),
          METRICS.map(([, m]) => m),
        );
        yield* writeChart(ctx.dir, config.file ?? RL_CHART, spec);
        ctx.reporter.log(`[${ctx.node}] RL curves of ${config.labels.join(", ")}`);
      }),
  });

/**
 * Adds the rlCharts node over `runs` (label -> rl node); `opts.arms` groups labels into lines (their
 * mean), `opts.file` names the chart's files.
 */
export const addRlCharts = (
  p: PipelineBuilder,
  name: string,
  runs: Readonly<Record<string, NodeRef>>,
  opts: { readonly arms?: Readonly<Record<string, string>>; readonly file?: string } = {},
): NodeRef => {
  const labels = Object.keys(runs);
  return p.add(name, rlChartsStep(labels, opts.file), { labels, ...opts }, runs);
};
