/**
 * `<run dir>/summary.json`: what ran, what was reused, and the metrics of every evaluated model.
 * Its shape is an effect/Schema so other tools (and our tests) can decode it with validation.
 */
import { Schema } from "effect";

export const StepSummary = Schema.Struct({
  name: Schema.String,
  step: Schema.String,
  key: Schema.String,
  status: Schema.Literal("ran", "cached", "resumed"),
  seconds: Schema.Number,
});

export const ModelMetrics = Schema.Struct({
  accuracy: Schema.Number,
  format_rate: Schema.Number,
  key_loss: Schema.Number,
  n: Schema.Number,
});
export type ModelMetrics = typeof ModelMetrics.Type;

export const Summary = Schema.Struct({
  pipeline: Schema.String,
  backend: Schema.String,
  run_dir: Schema.String,
  finished: Schema.String,
  seconds: Schema.Number,
  /** The pipeline's build-time decisions (Pipeline.settings), e.g. which budget applied and why. */
  settings: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  steps: Schema.Array(StepSummary),
  models: Schema.Record({ key: Schema.String, value: ModelMetrics }),
});
export type Summary = typeof Summary.Type;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

const pad = (rows: string[][]): string[] => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "));
};

/** The table printed at the end of a run: one row per evaluated model. */
export const formatMetricsTable = (models: Summary["models"]): string => {
  const rows = [["model", "accuracy", "format", "key loss", "n"]];
  for (const [name, m] of Object.entries(models)) {
    rows.push([name, pct(m.accuracy), pct(m.format_rate), m.key_loss.toFixed(4), String(m.n)]);
  }
  return pad(rows).join("\n");
};

export const formatStepsTable = (steps: Summary["steps"]): string => {
  const rows = [["step", "status", "seconds"]];
  for (const s of steps) rows.push([s.name, s.status, s.seconds.toFixed(1)]);
  return pad(rows).join("\n");
};
