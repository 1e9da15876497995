/**
 * Step `takeRows`: the first `n` rows of a JSONL file of another step's artifact (e.g. tokens.jsonl), so
 * that a smoke run (a comparison's --quick) trains and evaluates on a slice without another copy of the
 * data on disk. The rows keep their file:line sources, so messages still point into the original file.
 */
import { Effect, Schema } from "effect";
import type { ToolkitError } from "../errors.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { readJsonl, writeJsonl } from "../data/records.ts";

export const TakeRowsConfig = Schema.Struct({
  n: Schema.Int.pipe(Schema.positive()),
  /** The file inside the input artifact, written under the same name. */
  file: Schema.String,
});

/** The `takeRows` step: the first n rows of a JSONL artifact file. */
export const takeRowsStep: Step<typeof TakeRowsConfig.Type, "from", ToolkitError> = defineStep({
  name: "takeRows",
  version: 1,
  description: "the first n rows of a JSONL artifact file",
  config: TakeRowsConfig,
  inputs: ["from"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const rows = yield* readJsonl<unknown>(`${inputs.from}/${config.file}`);
      yield* writeJsonl(`${ctx.dir}/${config.file}`, rows.slice(0, config.n));
      ctx.reporter.log(`[${ctx.node}] ${Math.min(config.n, rows.length)} of ${rows.length} rows`);
    }),
});
