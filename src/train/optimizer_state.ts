/**
 * AdamW state on disk, for exact resume: one safetensors file with tensors "m.<param>" and "v.<param>"
 * (flat float32, bit-exact) and the step count in the metadata.
 */
import { Effect } from "effect";
import { CheckpointMalformed, type FileUnreadable, type WriteFailed } from "../errors.ts";
import { readFile, writeFileAtomic } from "../io/fs.ts";
import type { Params } from "../model/model.ts";
import { type NamedTensor, parseSafetensors, serializeSafetensors } from "../model/safetensors.ts";
import type { AdamWState } from "./adamw.ts";

export const OPTIMIZER_FILE = "optimizer.safetensors";

export const saveOptimizerState = (path: string, state: AdamWState): Effect.Effect<void, WriteFailed> => {
  const tensors = new Map<string, NamedTensor>();
  for (const [name, m] of state.m) tensors.set(`m.${name}`, { shape: [m.length], data: m });
  for (const [name, v] of state.v) tensors.set(`v.${name}`, { shape: [v.length], data: v });
  return writeFileAtomic(
    path,
    serializeSafetensors(tensors, { format: "sftkey-adamw", step: String(state.step) }),
  );
};

/** Loads a state saved by `saveOptimizerState`, checking it fits `params` (names and sizes). */
export const loadOptimizerState = (
  path: string,
  params: Params,
): Effect.Effect<AdamWState, CheckpointMalformed | FileUnreadable> =>
  Effect.gen(function* () {
    const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path, reason }));
    const file = yield* parseSafetensors(yield* readFile(path), path);
    const step = Number(file.metadata.step);
    if (file.metadata.format !== "sftkey-adamw" || !Number.isInteger(step) || step < 0) {
      return yield* fail("not an optimizer state (metadata format/step missing)");
    }
    if ([...file.dtypes.values()].some((d) => d !== "F32")) {
      return yield* fail("moments must be stored as F32");
    }
    if (file.tensors.size !== 2 * params.size) {
      return yield* fail(`${file.tensors.size} tensors for a model with ${params.size} parameters`);
    }
    const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
    for (const [name, p] of params) {
      const mt = file.tensors.get(`m.${name}`), vt = file.tensors.get(`v.${name}`);
      if (mt === undefined || vt === undefined) return yield* fail(`missing moments of ${name}`);
      if (mt.data.length !== p.size || vt.data.length !== p.size) {
        return yield* fail(`moments of ${name} have ${mt.data.length} values, the parameter ${p.size}`);
      }
      m.set(name, mt.data);
      v.set(name, vt.data);
    }
    return { step, m, v };
  });
