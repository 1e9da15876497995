/**
 * Step `buildMasks`: gives every token a loss weight. A mask is data, not code in the trainer: the
 * same train step runs stage one (whole response), stage two (key only), prefix or mixed masks.
 *
 * An example whose mask has no positive weight would contribute nothing while still counting as data
 * (the "silently empty mask" failure of other SFT tools): the step reports them by file:line and fails.
 */
import { Effect, Schema } from "effect";
import { EmptyDataset, type ToolkitError } from "../errors.ts";
import { buildMask, MaskSpec, maskWeightSum } from "../data/masks.ts";
import { createJsonl, type MaskedRecord, openJsonl, type TokenRecord } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { rowProgress } from "../engine/progress.ts";
import { SHOWN } from "./shared.ts";

/** Decoder of the step's config; the fields are documented on the interface `BuildMasksConfig`. */
export const BuildMasksConfig: Schema.Schema<BuildMasksConfig> = Schema.Struct({ mask: MaskSpec });

/**
 * The `buildMasks` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface BuildMasksConfig {
  /** Which tokens carry loss weight, and how much. */
  readonly mask: MaskSpec;
}

/** The `buildMasks` step: compute a loss weight for every token from a mask spec. */
export const buildMasksStep: Step<BuildMasksConfig, "tokens", ToolkitError> = defineStep({
  name: "buildMasks",
  version: 1,
  description: "compute a loss weight for every token from a mask spec",
  config: BuildMasksConfig,
  inputs: ["tokens"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      // Streamed batch by batch (a corpus may be larger than memory or than one string may be).
      const reader = yield* openJsonl<TokenRecord>(`${inputs.tokens}/tokens.jsonl`);
      const writer = yield* createJsonl(`${ctx.dir}/masked.jsonl`);
      const empty: string[] = [];
      let weightSum = 0;
      let responseTokens = 0;
      let total = 0;
      const streamed = rowProgress(ctx.reporter, `[${ctx.node}]`);
      for (let rows = yield* reader.next; rows !== undefined; rows = yield* reader.next) {
        streamed.add(rows.length);
        total += rows.length;
        const out: MaskedRecord[] = [];
        for (const r of rows) {
          const mask = buildMask(config.mask, {
            source: r.source,
            ids: [...r.input_ids],
            promptLength: r.prompt_length,
            key: r.key,
            answer: r.answer_part,
            truncated: false,
            keyTruncated: false,
          });
          const sum = maskWeightSum(mask);
          if (!(sum > 0)) empty.push(r.source);
          weightSum += sum;
          responseTokens += r.input_ids.length - r.prompt_length;
          out.push({ ...r, weights: Array.from(mask) });
        }
        yield* writer.write(out);
      }
      streamed.finish();
      if (empty.length > 0) {
        return yield* new EmptyDataset({
          what: `mask ${config.mask.kind}`,
          reason: `${empty.length} of ${total} examples would train on no token (first: ${
            empty.slice(0, SHOWN).join(", ")
          })`,
        });
      }
      yield* writer.commit;
      const report = { examples: total, weightSum, responseTokens, share: weightSum / responseTokens };
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
      ctx.reporter.log(
        `[${ctx.node}] mask "${config.mask.kind}": ${weightSum.toFixed(0)} weighted tokens, ` +
          `${(100 * report.share).toFixed(1)}% of response tokens`,
      );
    }),
});
