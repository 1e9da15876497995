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
  /** With several samples per prompt (src/steps/evaluate.ts): the sample count and pass@j by j. */
  samples: Schema.optional(Schema.Number),
  /** With RFTT's test-time search: rollouts per prompt (accuracy is then the vote's). */
  rollouts: Schema.optional(Schema.Number),
  /** With the test-time search: accuracy averaged over the rollouts (accuracy is the vote). */
  rollout_accuracy: Schema.optional(Schema.Number),
  pass_at: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number })),
  majority_accuracy: Schema.optional(Schema.Number),
  majority_at: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number })),
});
export type ModelMetrics = typeof ModelMetrics.Type;

/** Rows a data step dropped under a "drop" policy (--on-missing-key / --on-truncated-key), by file:line. */
export const DroppedRows = Schema.Struct({
  node: Schema.String,
  reason: Schema.String,
  count: Schema.Number,
  rows: Schema.Array(Schema.String),
});

/** The test rows a pipeline held out of --data (no --test given), from its holdOut step's report. */
export const HeldOut = Schema.Struct({
  node: Schema.String,
  from: Schema.String,
  rows: Schema.Number,
  of: Schema.Number,
  fraction: Schema.Number,
  max: Schema.Number,
  seed: Schema.Number,
});

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
  /** Present when some step dropped rows. */
  dropped: Schema.optional(Schema.Array(DroppedRows)),
  /** Present when the test rows were held out of the training data. */
  held_out: Schema.optional(Schema.Array(HeldOut)),
});
export type Summary = typeof Summary.Type;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

const pad = (rows: string[][]): string[] => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "));
};

/** The table printed at the end of a run: one row per evaluated model. */
export const formatMetricsTable = (models: Summary["models"]): string => {
  // Columns for pass@k and majority vote only when some model was evaluated with several samples.
  const sampled = Object.values(models).some((m) => m.pass_at !== undefined);
  const rows = [["model", "accuracy", "format", "key loss", "n", ...(sampled ? ["pass@k", "majority"] : [])]];
  for (const [name, m] of Object.entries(models)) {
    const votes = m.samples ?? m.rollouts;
    const k = votes === undefined ? undefined : String(votes);
    rows.push([
      name,
      pct(m.accuracy),
      pct(m.format_rate),
      m.key_loss.toFixed(4),
      String(m.n),
      ...(!sampled
        ? []
        : m.pass_at && k && m.pass_at[k] !== undefined
        ? [`${pct(m.pass_at[k])} (k=${k})`, pct(m.majority_accuracy ?? 0)]
        : ["-", "-"]),
    ]);
  }
  return pad(rows).join("\n");
};

export const formatStepsTable = (steps: Summary["steps"]): string => {
  const rows = [["step", "status", "seconds"]];
  for (const s of steps) rows.push([s.name, s.status, s.seconds.toFixed(1)]);
  return pad(rows).join("\n");
};
