/**
 * Checkpoints of a resumable optimisation (the `train` step, the `rl` step): weights (or a LoRA adapter),
 * AdamW moments and a JSON state, written into the step's working directory atomically and sealed.
 *
 * A checkpoint is written as `checkpoints/step-NNNNNNN.tmp`, sealed (every file's digest in seal.json,
 * written last), renamed into place, and then the LATEST pointer is swapped; older checkpoints are deleted
 * only after LATEST points past them. A resume trusts only a checkpoint whose seal matches and which loads;
 * anything else is reported and removed, and the caller starts from its beginning (which ends with the same
 * weights, since every run here is deterministic).
 */
import { Effect } from "effect";
import { describeError, type ToolkitError, WriteFailed } from "../errors.ts";
import { removeIfExists, writeFileAtomic } from "../io/fs.ts";
import { checkSeal, SEAL, sealOf } from "../io/sealed.ts";
import type { ModelConfig } from "../model/config.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { defaultTargets, type LoraSettings, trainableParams } from "../model/lora.ts";
import { disposeParams, type Params } from "../model/model.ts";
import { saveAdapter } from "../model/peft.ts";
import type { AdamW, AdamWState } from "./adamw.ts";
import { loadOptimizerState, OPTIMIZER_FILE, saveOptimizerState } from "./optimizer_state.ts";

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Where a step's checkpoints live inside its working directory. */
export const checkpointDir = (dir: string): string => `${dir}/checkpoints`;

/** The part of a checkpoint's state every run has: the optimizer steps (or updates) done. */
export interface RunState {
  /** Optimizer steps (train) or updates (rl) completed. */
  readonly step: number;
}

/**
 * Writes a checkpoint of `params` (the adapter only, with `lora`), the optimizer's moments and `state`
 * (as state.json); returns its path.
 */
export const saveRunCheckpoint = (
  dir: string,
  config: ModelConfig,
  params: Params,
  optimizer: AdamW,
  state: RunState,
  lora: LoraSettings | undefined,
): Effect.Effect<string, WriteFailed> =>
  Effect.gen(function* () {
    const root = checkpointDir(dir);
    const name = `step-${String(state.step).padStart(7, "0")}`;
    const tmp = `${root}/${name}.tmp`;
    yield* Effect.tryPromise({
      try: () => removeIfExists(tmp).then(() => Deno.mkdir(tmp, { recursive: true })),
      catch: (e) => new WriteFailed({ path: tmp, reason: reason(e) }),
    });
    if (lora) yield* saveAdapter(tmp, config, params, lora, lora.targets ?? defaultTargets(config), "(base)");
    else yield* saveCheckpoint(tmp, config, params);
    yield* saveOptimizerState(`${tmp}/${OPTIMIZER_FILE}`, optimizer.exportState());
    yield* writeFileAtomic(`${tmp}/state.json`, JSON.stringify(state));
    // Sealed last: a resume trusts only a checkpoint whose files all match their digests.
    yield* writeFileAtomic(`${tmp}/${SEAL}`, yield* Effect.promise(() => sealOf(tmp)));
    yield* Effect.tryPromise({
      try: async () => {
        await removeIfExists(`${root}/${name}`);
        await Deno.rename(tmp, `${root}/${name}`);
      },
      catch: (e) => new WriteFailed({ path: `${root}/${name}`, reason: reason(e) }),
    });
    yield* writeFileAtomic(`${root}/LATEST`, name);
    // Older checkpoints are no longer needed once LATEST points past them.
    yield* Effect.promise(async () => {
      for await (const e of Deno.readDir(root)) {
        if (e.isDirectory && e.name !== name) await removeIfExists(`${root}/${e.name}`);
      }
    });
    return `${root}/${name}`;
  });

/** A checkpoint that loaded: where, the model, the optimizer state and the run's state. */
export interface LoadedRunCheckpoint<S> {
  readonly path: string;
  readonly config: ModelConfig;
  readonly params: Params;
  readonly optimizer: AdamWState;
  readonly state: S;
}

/**
 * The latest checkpoint, or undefined when there is none or it cannot be trusted. A checkpoint that fails
 * its seal or does not load (a crash while old checkpoints were deleted, a flipped byte, a truncated file)
 * is reported and removed, and the run restarts from its beginning, which ends with the same weights;
 * failing instead would block every later attempt, and loading it regardless could resume from wrong
 * weights. `parseState` turns state.json's parsed JSON into the run's state (throwing when it cannot).
 */
export const loadRunCheckpoint = <S, E extends ToolkitError>(
  dir: string,
  log: (line: string) => void,
  loadModel: (path: string) => Effect.Effect<{ config: ModelConfig; params: Params }, E>,
  parseState: (json: unknown) => S,
): Effect.Effect<LoadedRunCheckpoint<S> | undefined> =>
  Effect.gen(function* () {
    const root = checkpointDir(dir);
    const latest = (yield* Effect.promise(() => Deno.readTextFile(`${root}/LATEST`).catch(() => "")))
      .trim();
    if (!latest) return undefined;
    const path = `${root}/${latest}`;
    const load = Effect.gen(function* () {
      const problem = /^step-\d+$/.test(latest)
        ? yield* Effect.promise(() => checkSeal(path))
        : `LATEST names "${latest.slice(0, 40)}"`;
      if (problem) return yield* Effect.fail(problem);
      const { config, params } = yield* loadModel(path);
      const rest = Effect.gen(function* () {
        const optimizer = yield* loadOptimizerState(`${path}/${OPTIMIZER_FILE}`, trainableParams(params));
        const state = yield* Effect.try(() =>
          parseState(JSON.parse(Deno.readTextFileSync(`${path}/state.json`)))
        );
        return { path, config, params, optimizer, state };
      });
      return yield* Effect.tapError(rest, () => Effect.sync(() => disposeParams(params)));
    });
    const result = yield* Effect.either(load);
    if (result._tag === "Right") return result.right;
    const why = typeof result.left === "string"
      ? result.left
      : "_tag" in result.left && result.left._tag !== "UnknownException"
      ? describeError(result.left)
      : String(result.left);
    log(`checkpoint ${path} cannot be used (${why}); restarting this stage from its beginning`);
    yield* Effect.promise(() => removeIfExists(root));
    return undefined;
  });
