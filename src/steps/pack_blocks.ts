/**
 * Step `packBlocks`: a tokenised corpus as training rows for the train step. Documents are joined into one
 * stream, each followed by EOS, and the stream is cut into blocks of `blockLength` tokens; every token has
 * loss weight 1 (pretraining: the loss on every token). The rows are ordinary masked.jsonl records
 * (prompt_length 0, empty key), so the same train step that fine-tunes also pretrains, with its cache,
 * checkpoints, resumption and progress line.
 *
 * Held-out split: document i belongs to the held-out part when i % heldOutEvery === 0, to the training
 * part otherwise; `split` says which part this node packs. The last, partial block is dropped (it would be
 * the only row shorter than the others).
 *
 * Output: masked.jsonl and report.json (documents, blocks, tokens).
 */
import { Effect, Schema } from "effect";
import { EmptyDataset } from "../errors.ts";
import { type MaskedRecord, readJsonl, writeJsonl } from "../data/records.ts";
import { readJson, writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";

export const PackBlocksConfig = Schema.Struct({
  blockLength: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  /** Every heldOutEvery-th document (0, k, 2k, ...) is held out. */
  heldOutEvery: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  split: Schema.Literal("train", "heldout"),
});

export const packBlocksStep = defineStep({
  name: "packBlocks",
  version: 1,
  description: "documents joined by EOS and cut into fixed-length blocks, every token weighted 1",
  config: PackBlocksConfig,
  inputs: ["tokens"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const docs = yield* readJsonl<{ source: string; input_ids: number[] }>(
        `${inputs.tokens}/documents.jsonl`,
      );
      const { eosId } = (yield* readJson(`${inputs.tokens}/report.json`)) as { eosId: number };
      const chosen = docs.filter((_, i) => (i % config.heldOutEvery === 0) === (config.split === "heldout"));
      const stream: number[] = [];
      for (const d of chosen) {
        for (const id of d.input_ids) stream.push(id);
        stream.push(eosId);
      }
      const blocks = Math.floor(stream.length / config.blockLength);
      if (blocks === 0) {
        return yield* new EmptyDataset({
          what: `${ctx.node}`,
          reason:
            `${chosen.length} documents make ${stream.length} tokens, less than one block of ${config.blockLength}`,
        });
      }
      const weights = Array(config.blockLength).fill(1);
      const rows: MaskedRecord[] = [];
      for (let b = 0; b < blocks; b++) {
        rows.push({
          source: `${config.split} block ${b}`,
          input_ids: stream.slice(b * config.blockLength, (b + 1) * config.blockLength),
          prompt_length: 0,
          key: { start: 0, end: 0 },
          answer_part: { start: 0, end: 0 },
          answer: "",
          weights,
        });
      }
      yield* writeJsonl(`${ctx.dir}/masked.jsonl`, rows);
      const report = {
        split: config.split,
        documents: chosen.length,
        blocks,
        tokens: blocks * config.blockLength,
        droppedTokens: stream.length - blocks * config.blockLength,
      };
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2) + "\n");
      ctx.reporter.log(
        `[${ctx.node}] ${chosen.length} documents -> ${blocks} blocks of ${config.blockLength} tokens`,
      );
    }),
});
