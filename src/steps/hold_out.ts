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
import { createJsonl, type LocatedRecord, openJsonl, openLines } from "../data/records.ts";
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
      // Two streamed passes (count, then copy the part), so a split of a million rows holds only the
      // row indices, never the rows.
      const path = `${inputs.examples}/located.jsonl`;
      let n = 0;
      let firstSource: string | undefined;
      yield* Effect.scoped(Effect.gen(function* () {
        // Counting needs no parsing, except of the first row (for the file name in messages).
        const lines = yield* openLines(path);
        for (let batch = yield* lines.next; batch !== undefined; batch = yield* lines.next) {
          if (n === 0 && batch.length > 0) firstSource = (JSON.parse(batch[0].text) as LocatedRecord).source;
          n += batch.length;
        }
      }));
      const from = firstSource?.slice(0, firstSource.lastIndexOf(":")) ?? inputs.examples!;
      if (n < 2) {
        return yield* new EmptyDataset({
          what: from,
          reason: `${n} usable row(s) cannot be split into training and held-out test rows; ` +
            "give --test FILE, or --eval-on-train to evaluate on the training rows",
        });
      }
      const held = new Set(heldOutIndices(n, config));
      const keep = config.part === "test";
      const written = yield* Effect.scoped(Effect.gen(function* () {
        const reader = yield* openJsonl<LocatedRecord>(path);
        const writer = yield* createJsonl(`${ctx.dir}/located.jsonl`);
        let index = 0;
        for (let rows = yield* reader.next; rows !== undefined; rows = yield* reader.next) {
          const part: LocatedRecord[] = [];
          for (const r of rows) if (held.has(index++) === keep) part.push(r);
          if (part.length > 0) yield* writer.write(part);
        }
        yield* writer.commit;
        return writer.count();
      }));
      const heldOut = {
        from,
        rows: held.size,
        of: n,
        fraction: config.fraction,
        max: config.max,
        seed: config.seed,
      };
      yield* writeFileAtomic(
        `${ctx.dir}/report.json`,
        JSON.stringify(
          config.part === "test" ? { rows: written, heldOut } : { rows: written, of: n },
          null,
          2,
        ),
      );
      ctx.reporter.log(
        config.part === "test"
          ? `[${ctx.node}] ${written} of ${n} rows held out for evaluation (seed ${config.seed})`
          : `[${ctx.node}] ${written} of ${n} rows for training`,
      );
    }),
});
