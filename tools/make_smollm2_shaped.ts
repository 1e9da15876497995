/**
 * Writes a Hugging Face checkpoint with SmolLM2-135M's shape and random weights (LlamaForCausalLM:
 * hidden 576, 30 layers, 9 heads, 3 key/value heads, MLP 1536, vocabulary 49152, tied embeddings,
 * rope_theta 100000), for measuring memory and speed on a realistic size without downloading anything.
 * About 540 MB of float32 weights.
 *
 *   deno run --allow-read --allow-write tools/make_smollm2_shaped.ts [DIR]   (default: a new temp dir)
 *
 * Prints the directory.
 */
import { Effect } from "effect";
import type { ModelConfig } from "../src/model/config.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import { Rng } from "../src/util/rng.ts";

export const SMOLLM2_135M: ModelConfig = {
  architecture: "llama",
  vocabSize: 49152,
  hiddenSize: 576,
  numLayers: 30,
  numHeads: 9,
  numKvHeads: 3,
  intermediateSize: 1536,
  maxPositions: 8192,
  ropeTheta: 100000,
  rmsNormEps: 1e-5,
  tieEmbeddings: true,
};

/** Writes the checkpoint into `dir` (created if needed). */
export const makeSmollm2Shaped = (dir: string, seed = 0) =>
  Effect.gen(function* () {
    const params = initParams(SMOLLM2_135M, Rng.seeded(seed));
    yield* saveCheckpoint(dir, SMOLLM2_135M, params, {}, {
      baseConfig: { bos_token_id: 0, eos_token_id: 0 },
    }).pipe(Effect.ensuring(Effect.sync(() => disposeParams(params))));
    return dir;
  });

if (import.meta.main) {
  const dir = Deno.args[0] ?? await Deno.makeTempDir({ prefix: "smollm2-shaped-" });
  console.log(await Effect.runPromise(makeSmollm2Shaped(dir)));
}
