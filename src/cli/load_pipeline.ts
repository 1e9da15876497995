/** Finds a pipeline by name (pipelines/index.ts) or loads a user's pipeline file exporting `build`. */
import { Effect } from "effect";
import { InvalidConfig, PipelineInvalid } from "../errors.ts";
import type { Pipeline } from "../engine/pipeline.ts";
import type { PipelineOptions } from "../../pipelines/data.ts";
import { pipelines } from "../../pipelines/index.ts";

export const loadPipeline = (
  nameOrFile: string,
  opts: PipelineOptions,
): Effect.Effect<Pipeline, PipelineInvalid | InvalidConfig> =>
  Effect.gen(function* () {
    let factory = pipelines[nameOrFile];
    if (!factory) {
      if (!nameOrFile.endsWith(".ts")) {
        return yield* new PipelineInvalid({
          pipeline: nameOrFile,
          reason: `no such pipeline; choose one of ${Object.keys(pipelines).join(", ")} or give a .ts file`,
        });
      }
      const url = new URL(nameOrFile, `file://${Deno.cwd()}/`).href;
      const mod = yield* Effect.tryPromise({
        try: () => import(url),
        catch: (e) => new PipelineInvalid({ pipeline: nameOrFile, reason: `cannot load: ${e}` }),
      });
      if (typeof mod.build !== "function") {
        return yield* new PipelineInvalid({
          pipeline: nameOrFile,
          reason: "the file does not export build()",
        });
      }
      factory = mod.build;
    }
    return yield* Effect.try({
      try: () => factory(opts),
      // A typed error names the flag to change (InvalidConfig from prepareData: --locator, ...).
      catch: (e) =>
        e instanceof PipelineInvalid || e instanceof InvalidConfig
          ? e
          : new PipelineInvalid({ pipeline: nameOrFile, reason: String(e) }),
    });
  });
