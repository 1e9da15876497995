/**
 * Step `exportTrl`: writes a masked dataset (a buildMasks artifact) as the pre-tokenised JSONL that TRL's
 * SFTTrainer trains on, one row per example:
 *
 *   {"input_ids": [...], "completion_mask": [0, 0, 1, ...]}
 *
 * TRL recognises a dataset with an `input_ids` column as already tokenised and skips its own tokenisation;
 * its collator then sets the label of every position whose `completion_mask` is 0 to -100 (when
 * `completion_only_loss` is on), and the model shifts labels, so `completion_mask[t]` means "train on
 * predicting input_ids[t]" exactly as this toolkit's `weights[t]` does (huggingface/trl,
 * trl/trainer/sft_trainer.py: DataCollatorForLanguageModeling). TRL's mean over unmasked tokens equals
 * this toolkit's weighted loss for 0/1 weights (README, "Loss normalisation").
 *
 * A mask with other weights (a `mix` mask, a weight of 2) has no 0/1 equivalent: rounding it would train
 * something else than the pipeline does, so the step refuses it, naming the first such example.
 */
import { Effect, Schema } from "effect";
import { InvalidConfig, type ToolkitError } from "../errors.ts";
import { createJsonl, type MaskedRecord, openJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { rowProgress } from "../engine/progress.ts";

/** The file the step writes. */
export const TRL_FILE = "trl.jsonl";

export interface TrlRow {
  readonly input_ids: ReadonlyArray<number>;
  readonly completion_mask: ReadonlyArray<0 | 1>;
}

/** The TRL row of one masked example, or undefined when a weight is neither 0 nor 1. */
export const trlRow = (r: MaskedRecord): TrlRow | undefined => {
  const mask: (0 | 1)[] = [];
  for (const w of r.weights) {
    if (w !== 0 && w !== 1) return undefined;
    mask.push(w);
  }
  return { input_ids: r.input_ids, completion_mask: mask };
};

/** The `exportTrl` step: write a masked dataset as TRL SFTTrainer JSONL (input_ids, completion_mask). */
export const exportTrlStep: Step<Record<never, never>, "data", ToolkitError> = defineStep({
  name: "exportTrl",
  version: 1,
  description: "write a masked dataset as TRL SFTTrainer JSONL (input_ids, completion_mask)",
  config: Schema.Struct({}),
  inputs: ["data"] as const,
  run: (_config, inputs, ctx) =>
    Effect.gen(function* () {
      // Streamed batch by batch (a corpus may be larger than memory or than one string may be).
      const reader = yield* openJsonl<MaskedRecord>(`${inputs.data}/masked.jsonl`);
      const writer = yield* createJsonl(`${ctx.dir}/${TRL_FILE}`);
      let trained = 0;
      const streamed = rowProgress(ctx.reporter, `[${ctx.node}]`);
      for (let rows = yield* reader.next; rows !== undefined; rows = yield* reader.next) {
        streamed.add(rows.length);
        const out: TrlRow[] = [];
        for (const r of rows) {
          const row = trlRow(r);
          if (row === undefined) {
            const odd = r.weights.find((w) => w !== 0 && w !== 1);
            return yield* new InvalidConfig({
              where: ctx.node,
              reason:
                `${r.source} has loss weight ${odd}; TRL's completion_mask is 0/1, so only masks with ` +
                "weights 0 and 1 (response, key, answer, prefix) can be exported",
            });
          }
          trained += r.weights.reduce((s, w) => s + w, 0);
          out.push(row);
        }
        yield* writer.write(out);
      }
      streamed.finish();
      yield* writer.commit;
      const examples = writer.count();
      const report = { examples, trainedTokens: trained };
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
      ctx.reporter.log(`[${ctx.node}] ${examples} examples, ${trained} trained tokens`);
    }),
});
