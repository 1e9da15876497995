/**
 * What several steps share, in one module below every step (a step never imports another step).
 * Not a step itself: helpers, shared config pieces and the scoped model-and-tokenizer resource. The
 * self-generation methods' common algorithm (generate, judge, keep) is the other such module,
 * self_generation.ts; its header says why it is separate.
 */
import { Effect, Schema, type Scope } from "effect";
import type { AdapterInvalid, CheckpointMalformed, FileUnreadable, TokenizerMismatch } from "../errors.ts";
import { loadTokenizer, type TextTokenizer } from "../data/tokenizer.ts";
import { exists } from "../io/fs.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import type { ModelConfig } from "../model/config.ts";
import { mergeAdapter } from "../model/lora.ts";
import { disposeParams, type Params } from "../model/model.ts";
import { ADAPTER_CONFIG_FILE, loadAdapter } from "../model/peft.ts";

/** What to do with a row that has a problem (key not found, key cut by max length): drop it or fail. */
export const OnProblem = Schema.Literal("drop", "fail");

/** How many problems to name by file:line in reports and errors. */
export const SHOWN = 5;

/** The model directory inside a train artifact, or a plain checkpoint directory given as a source. */
export const modelDirOf = async (dir: string): Promise<string> =>
  (await exists(`${dir}/model/config.json`)) ? `${dir}/model` : dir;

/**
 * The LoRA adapter inside a train artifact (its adapter/, written under `lora`), or a plain adapter
 * directory (PEFT layout) given as a source.
 */
export const adapterDirOf = async (dir: string): Promise<string> =>
  (await exists(`${dir}/adapter/${ADAPTER_CONFIG_FILE}`)) ? `${dir}/adapter` : dir;

/** A checkpoint's config and weights with the tokenizer that goes with them. */
export interface LoadedModel {
  readonly tok: TextTokenizer;
  readonly config: ModelConfig;
  readonly params: Params;
}

/**
 * The prologue of every step that runs a model: the tokenizer, then the checkpoint (a train artifact or
 * a plain checkpoint directory), with `adapter` (a LoRA adapter, adapterDirOf) merged into it when given,
 * as `deno task merge` would. The weights are a scoped resource: their tfjs tensors are disposed when
 * the step's scope closes, whether it succeeded, failed or was interrupted.
 */
export const loadModel = (
  model: string,
  tokenizer: string,
  adapter?: string,
): Effect.Effect<
  LoadedModel,
  FileUnreadable | TokenizerMismatch | CheckpointMalformed | AdapterInvalid,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const tok = yield* loadTokenizer(tokenizer);
    const dir = yield* Effect.promise(() => modelDirOf(model));
    const { config, params } = yield* Effect.acquireRelease(
      loadCheckpoint(dir),
      (loaded) => Effect.sync(() => disposeParams(loaded.params)),
    );
    if (adapter !== undefined) {
      yield* loadAdapter(yield* Effect.promise(() => adapterDirOf(adapter)), config, params);
      mergeAdapter(params, config);
    }
    return { tok, config, params };
  });
