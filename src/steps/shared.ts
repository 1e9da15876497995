/**
 * What several steps share, in one module below every step (a step never imports another step).
 * Not a step itself: helpers, shared config pieces and the scoped model-and-tokenizer resource. The
 * self-generation methods' common algorithm (generate, judge, keep) is the other such module,
 * self_generation.ts; its header says why it is separate.
 */
import { Effect, Schema, type Scope } from "effect";
import {
  type AdapterInvalid,
  type CheckpointMalformed,
  type FileUnreadable,
  type TokenizerMismatch,
  WriteFailed,
} from "../errors.ts";
import {
  loadTokenizer,
  type TextTokenizer,
  TOKENIZER_COMPANIONS,
  tokenizerFiles,
} from "../data/tokenizer.ts";
import { exists, readJson, removeIfExists } from "../io/fs.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
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

/**
 * Makes model/ a complete Hugging Face checkpoint with exactly the tokenizer files the loader reads for
 * `tokenizerPath` (a tokenizer.json, or a directory with one or with vocab.json + merges.txt): tokenizer
 * files copied from the init checkpoint that the run did not use are removed, so that no loader can pick
 * another tokenizer than the one the model was trained with.
 */
export const copyTokenizerFiles = (
  tokenizerPath: string,
  modelDir: string,
): Effect.Effect<void, FileUnreadable | TokenizerMismatch | WriteFailed> =>
  Effect.gen(function* () {
    const files = yield* tokenizerFiles(tokenizerPath);
    const used = new Set(files.map((f) => f.name));
    yield* Effect.tryPromise({
      try: async () => {
        for (const name of TOKENIZER_COMPANIONS) {
          if (!used.has(name)) await removeIfExists(`${modelDir}/${name}`);
        }
        for (const f of files) await Deno.copyFile(f.from, `${modelDir}/${f.name}`);
      },
      catch: (e) => new WriteFailed({ path: modelDir, reason: e instanceof Error ? e.message : String(e) }),
    });
  });

/**
 * Saves a trained model as `dir`, a Hugging Face checkpoint: a model fine-tuned from the checkpoint in
 * `initDir` keeps that checkpoint's other config.json fields (eos_token_id, ...) and side files
 * (generation_config.json, ...), and the tokenizer files of `tokenizer` (when given) go with it.
 */
export const saveTrainedModel = (
  dir: string,
  config: ModelConfig,
  params: Params,
  initDir: string | undefined,
  tokenizer: string | undefined,
): Effect.Effect<void, FileUnreadable | TokenizerMismatch | WriteFailed> =>
  Effect.gen(function* () {
    const baseConfig = initDir
      ? (yield* readJson(`${initDir}/config.json`).pipe(Effect.orElseSucceed(() => undefined))) as
        | Record<string, unknown>
        | undefined
      : undefined;
    yield* saveCheckpoint(dir, config, params, {}, { baseConfig, copySideFilesFrom: initDir });
    if (tokenizer) yield* copyTokenizerFiles(tokenizer, dir);
  });
