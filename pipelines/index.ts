/** The shipped pipelines, by name. `deno task pipeline <name>` runs one; a path to a .ts file works too. */
import type { Pipeline } from "../src/engine/pipeline.ts";
import type { PipelineOptions } from "./data.ts";
import * as cft from "./cft.ts";
import * as compare from "./compare.ts";
import * as dft from "./dft.ts";
import * as fdiv from "./fdiv.ts";
import * as mix from "./mix.ts";
import * as pretrain from "./pretrain.ts";
import * as rftt from "./rftt.ts";
import * as s3ft from "./s3ft.ts";
import * as sft from "./sft.ts";
import * as sftkey from "./sftkey.ts";
import * as upft from "./upft.ts";

export type PipelineFactory = (opts: PipelineOptions) => Pipeline;

export const pipelines: Record<string, PipelineFactory> = {
  sftkey: sftkey.build,
  "sftkey-finetune": sftkey.buildFineTune,
  sft: sft.build,
  dft: dft.build,
  fdiv: fdiv.build,
  mix: mix.build,
  upft: upft.build,
  cft: cft.build,
  s3ft: s3ft.build,
  rftt: rftt.build,
  compare: (opts) => compare.build(opts),
  // The comparison in the fine-tuning regime: the shipped base unless --model names another checkpoint.
  "compare-finetune": (opts) =>
    compare.build({
      ...opts,
      model: opts.model ?? sftkey.SHIPPED_BASE.model,
      tokenizer: opts.tokenizer ?? (opts.model ? undefined : sftkey.SHIPPED_BASE.tokenizer),
    }),
  pretrain: pretrain.build,
};

/**
 * What `deno task pipeline` runs without a name: SFTKey and SFT fine-tuning the shipped base on the tag-format
 * word problems, as users fine-tune their own checkpoints. The from-scratch run is `sftkey`.
 */
export const DEFAULT_PIPELINE = "sftkey-finetune";
