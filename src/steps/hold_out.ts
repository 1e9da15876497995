/**
 * Step `holdOut`: one part of a seeded split of located examples into training rows and held-out test
 * rows, so that a pipeline given only `--data` evaluates on rows that training never sees. The held-out
 * rows are the first `round(fraction * n)` (at least 1, at most `max`) of a seeded shuffle of the row
 * indices; both parts keep the file's order and their file:line sources. The two nodes of a split (part
 * "train" and part "test") share every other config field, so they draw the same shuffle.
 *
 * Output: located.jsonl (the part's rows) and report.json; the test part's report has a `heldOut` entry
 * that the run's summary.json repeats.
 */
import { Effect, Schema } from "effect";
import { EmptyDataset, type ToolkitError } from "../errors.ts";
import { type LocatedRecord, readJsonl, writeJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { Rng } from "../util/rng.ts";

export const HoldOutConfig = Schema.Struct({
  part: Schema.Literal("train", "test"),
  /** Share of the rows held out for testing. */
  fraction: Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(1)),
  /** Most rows held out. */
  max: Schema.Int.pipe(Schema.positive()),
  seed: Schema.Int,
});
export type HoldOutConfig = typeof HoldOutConfig.Type;

/** How many of `n` rows are held out. */
export const heldOutCount = (n: number, config: Omit<HoldOutConfig, "part" | "seed">): number =>
  Math.min(config.max, Math.max(1, Math.round(config.fraction * n)));

/** Indices (ascending) of the held-out rows among `n`. */
export const heldOutIndices = (n: number, config: Omit<HoldOutConfig, "part">): number[] => {
  const count = heldOutCount(n, config);
  const order = Rng.seeded(config.seed).shuffle(Array.from({ length: n }, (_, i) => i));
  return order.slice(0, count).sort((a, b) => a - b);
};

/** The `holdOut` step: one part (training or held-out test rows) of a seeded split of located examples. */
export const holdOutStep: Step<HoldOutConfig, "examples", ToolkitError> = defineStep({
  name: "holdOut",
  version: 1,
  description: "a seeded split of the rows into training rows and held-out test rows",
  config: HoldOutConfig,
  inputs: ["examples"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const rows = yield* readJsonl<LocatedRecord>(`${inputs.examples}/located.jsonl`);
      const from = rows[0]?.source.slice(0, rows[0].source.lastIndexOf(":")) ?? inputs.examples!;
      if (rows.length < 2) {
        return yield* new EmptyDataset({
          what: from,
          reason: `${rows.length} usable row(s) cannot be split into training and held-out test rows; ` +
            "give --test FILE, or --eval-on-train to evaluate on the training rows",
        });
      }
      const held = new Set(heldOutIndices(rows.length, config));
      const part = rows.filter((_, i) => held.has(i) === (config.part === "test"));
      yield* writeJsonl(`${ctx.dir}/located.jsonl`, part);
      const heldOut = {
        from,
        rows: held.size,
        of: rows.length,
        fraction: config.fraction,
        max: config.max,
        seed: config.seed,
      };
      yield* writeFileAtomic(
        `${ctx.dir}/report.json`,
        JSON.stringify(
          config.part === "test" ? { rows: part.length, heldOut } : { rows: part.length, of: rows.length },
          null,
          2,
        ),
      );
      ctx.reporter.log(
        config.part === "test"
          ? `[${ctx.node}] ${part.length} of ${rows.length} rows held out for evaluation (seed ${config.seed})`
          : `[${ctx.node}] ${part.length} of ${rows.length} rows for training`,
      );
    }),
});
