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
import { type MaskedRecord, readJsonl, type TokenRecord, writeJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { SHOWN } from "./shared.ts";

export const BuildMasksConfig = Schema.Struct({ mask: MaskSpec });

/** The `buildMasks` step: compute a loss weight for every token from a mask spec. */
export const buildMasksStep: Step<typeof BuildMasksConfig.Type, "tokens", ToolkitError> = defineStep({
  name: "buildMasks",
  version: 1,
  description: "compute a loss weight for every token from a mask spec",
  config: BuildMasksConfig,
  inputs: ["tokens"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const rows = yield* readJsonl<TokenRecord>(`${inputs.tokens}/tokens.jsonl`);
      const out: MaskedRecord[] = [];
      const empty: string[] = [];
      let weightSum = 0;
      let responseTokens = 0;
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
      if (empty.length > 0) {
        return yield* new EmptyDataset({
          what: `mask ${config.mask.kind}`,
          reason: `${empty.length} of ${rows.length} examples would train on no token (first: ${
            empty.slice(0, SHOWN).join(", ")
          })`,
        });
      }
      yield* writeJsonl(`${ctx.dir}/masked.jsonl`, out);
      const report = { examples: out.length, weightSum, responseTokens, share: weightSum / responseTokens };
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
      ctx.reporter.log(
        `[${ctx.node}] mask "${config.mask.kind}": ${weightSum.toFixed(0)} weighted tokens, ` +
          `${(100 * report.share).toFixed(1)}% of response tokens`,
      );
    }),
});
