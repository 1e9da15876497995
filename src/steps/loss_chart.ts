/**
 * Step `lossChart`: a training run's loss curve (the train artifact's train_log.jsonl, after the one of the
 * run it continued, `before`, when given) as a Vega-Lite chart,
 * rendered to SVG with the report's chart code (src/report/charts.ts), with the spec beside it. The run
 * copies both into the run directory when it ends.
 *
 * Output: loss_curve.svg, loss_curve.vl.json.
 */
import { Effect, Schema } from "effect";
import { readJsonl } from "../data/records.ts";
import { defineStep } from "../engine/step.ts";
import { chartFiles, type LossPoint, lossSpec, writeChart } from "../report/charts.ts";

export const LossChartConfig = Schema.Struct({
  /** The curve's label (the panel title). */
  label: Schema.String,
  /** Plot every n-th step (a long run's curve needs no more points than a chart has pixels). */
  every: Schema.Int.pipe(Schema.positive()),
});

/** The chart's file name without extension: loss_curve.svg and loss_curve.vl.json. */
export const LOSS_CHART = "loss_curve";

export const lossChartStep = defineStep({
  name: "lossChart",
  version: 1,
  description: "the training loss curve as a chart",
  config: LossChartConfig,
  inputs: ["train", "before"] as const,
  optionalInputs: ["before"] as const,
  publishes: chartFiles(LOSS_CHART),
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      type Row = { step: number; loss: number };
      const log = yield* readJsonl<Row>(`${inputs.train}/train_log.jsonl`);
      const earlier = inputs.before ? yield* readJsonl<Row>(`${inputs.before}/train_log.jsonl`) : [];
      const legs = earlier.length > 0
        ? [{ stage: "first leg", rows: earlier, offset: 0 }, {
          stage: "second leg",
          rows: log,
          offset: earlier.length,
        }]
        : [{ stage: "train", rows: log, offset: 0 }];
      const points: LossPoint[] = legs.flatMap(({ stage, rows, offset }) =>
        rows
          .filter((r) => r.step % config.every === 0 || r.step === 1 || r.step === rows.length)
          .map((r) => ({
            dataset: "corpus",
            method: config.label,
            stage,
            step: offset + r.step,
            loss: r.loss,
          }))
      );
      const spec = lossSpec(points, [config.label]);
      yield* writeChart(ctx.dir, LOSS_CHART, spec);
      ctx.reporter.log(`[${ctx.node}] loss curve of ${earlier.length + log.length} steps`);
    }),
});
