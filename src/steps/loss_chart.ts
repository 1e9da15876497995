/**
 * Step `lossChart`: a training run's loss curve (the train artifact's train_log.jsonl) as a Vega-Lite chart,
 * rendered to SVG with the report's chart code (src/report/charts.ts), with the spec beside it. The run
 * copies both into the run directory when it ends.
 *
 * Output: loss_curve.svg, loss_curve.vl.json.
 */
import { Effect, Schema } from "effect";
import { WriteFailed } from "../errors.ts";
import { readJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";
import { type LossPoint, lossSpec, renderSvg } from "../report/charts.ts";

export const LossChartConfig = Schema.Struct({
  /** The curve's label (the panel title). */
  label: Schema.String,
  /** Plot every n-th step (a long run's curve needs no more points than a chart has pixels). */
  every: Schema.Int.pipe(Schema.positive()),
});

export const LOSS_CHART_FILES = ["loss_curve.svg", "loss_curve.vl.json"] as const;

export const lossChartStep = defineStep({
  name: "lossChart",
  version: 1,
  description: "the training loss curve as a chart",
  config: LossChartConfig,
  inputs: ["train"] as const,
  publishes: LOSS_CHART_FILES,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const log = yield* readJsonl<{ step: number; loss: number }>(`${inputs.train}/train_log.jsonl`);
      const points: LossPoint[] = log
        .filter((r) => r.step % config.every === 0 || r.step === 1 || r.step === log.length)
        .map((r) => ({
          dataset: "corpus",
          method: config.label,
          stage: "train",
          step: r.step,
          loss: r.loss,
        }));
      const spec = lossSpec(points, [config.label]);
      const svg = yield* Effect.tryPromise({
        try: () => renderSvg(spec),
        catch: (e) => new WriteFailed({ path: `${ctx.dir}/loss_curve.svg`, reason: String(e) }),
      });
      yield* writeFileAtomic(`${ctx.dir}/loss_curve.svg`, svg);
      yield* writeFileAtomic(`${ctx.dir}/loss_curve.vl.json`, JSON.stringify(spec, null, 2) + "\n");
      ctx.reporter.log(`[${ctx.node}] loss curve of ${log.length} steps`);
    }),
});
