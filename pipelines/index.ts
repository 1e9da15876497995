/** The shipped pipelines, by name. `deno task pipeline <name>` runs one; a path to a .ts file works too. */
import type { Pipeline } from "../src/engine/pipeline.ts";
import type { PipelineOptions } from "./common.ts";
import * as sft from "./sft.ts";
import * as sftkey from "./sftkey.ts";

export type PipelineFactory = (opts: PipelineOptions) => Pipeline;

export const pipelines: Record<string, PipelineFactory> = {
  sftkey: sftkey.build,
  sft: sft.build,
};

export const DEFAULT_PIPELINE = "sftkey";
