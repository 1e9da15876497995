/**
 * Finds a pipeline by name (pipelines/index.ts) or loads a user's pipeline file exporting `build`. Every
 * failure while building is a typed error naming the file at fault: the pipeline file (missing, does not
 * load, has no build(), build() throws), or a file a pipeline reads while it is built (the tokenizer that
 * sizes a fresh model: FileUnreadable or TokenizerMismatch, passed through as the loader typed them).
 */
import { Effect } from "effect";
import { FileUnreadable, PipelineInvalid, type TokenizerMismatch } from "../errors.ts";
import type { Pipeline } from "../engine/pipeline.ts";
import type { PipelineOptions } from "../../pipelines/data.ts";
import { pipelines } from "../../pipelines/index.ts";

export type BuildError = PipelineInvalid | FileUnreadable | TokenizerMismatch;

/** Tags of the errors a pipeline's build may throw that already name their file. */
const PASSED_THROUGH = new Set(["PipelineInvalid", "FileUnreadable", "TokenizerMismatch"]);

const tagOf = (e: unknown) =>
  typeof e === "object" && e !== null && "_tag" in e ? String((e as { _tag: unknown })._tag) : undefined;

/**
 * The first line of an error, with the file:line:column Deno's parse errors give below their code frame
 * ("SyntaxError: Expression expected at /p/file.ts:1:24").
 */
const firstLine = (e: unknown) => {
  const text = String(e);
  const at = text.match(/\n\s*at (?:file:\/\/)?(\S+:\d+:\d+)\s*$/);
  return `${text.split("\n")[0].trim()}${at ? ` at ${at[1]}` : ""}`;
};

export const loadPipeline = (
  nameOrFile: string,
  opts: PipelineOptions,
): Effect.Effect<Pipeline, BuildError> =>
  Effect.gen(function* () {
    let factory = pipelines[nameOrFile];
    if (!factory) {
      if (!nameOrFile.endsWith(".ts")) {
        return yield* new PipelineInvalid({
          pipeline: nameOrFile,
          reason: `no such pipeline; choose one of ${Object.keys(pipelines).join(", ")} or give a .ts file`,
        });
      }
      const url = new URL(nameOrFile, `file://${Deno.cwd()}/`);
      const isFile = yield* Effect.try({
        try: () => Deno.statSync(url).isFile,
        catch: (e) => new FileUnreadable({ path: nameOrFile, reason: firstLine((e as Error).message) }),
      });
      if (!isFile) return yield* new FileUnreadable({ path: nameOrFile, reason: "not a file" });
      const mod = yield* Effect.tryPromise({
        try: () => import(url.href),
        catch: (e) => new PipelineInvalid({ pipeline: nameOrFile, reason: `cannot load: ${firstLine(e)}` }),
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
      catch: (e) => {
        const tag = tagOf(e);
        return tag && PASSED_THROUGH.has(tag)
          ? e as BuildError
          : new PipelineInvalid({ pipeline: nameOrFile, reason: `build() threw: ${firstLine(e)}` });
      },
    });
  });
