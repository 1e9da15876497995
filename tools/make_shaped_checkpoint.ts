/**
 * Writes a Hugging Face checkpoint with a real model's shape and random weights, for measuring memory
 * and speed at realistic sizes without downloading anything:
 *
 * - `smol`: SmolLM2-135M (LlamaForCausalLM: hidden 576, 30 layers, 9 heads, 3 key/value heads, MLP
 *   1536, vocabulary 49152, tied embeddings, rope_theta 100000); about 540 MB of float32 weights.
 * - `qwen05`: Qwen2.5-0.5B (Qwen2ForCausalLM: hidden 896, 24 layers, 14 heads, 2 key/value heads, MLP
 *   4864, vocabulary 151936, q/k/v biases, tied embeddings, rope_theta 1000000); about 1.98 GB.
 *
 *   deno run --allow-read --allow-write tools/make_shaped_checkpoint.ts smol|qwen05 [DIR]
 *
 * DIR defaults to a new temporary directory. Prints the directory.
 */
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import { Rng } from "../src/util/rng.ts";

export const SHAPES: Readonly<Record<"smol" | "qwen05", ModelConfig>> = {
  smol: {
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
  },
  qwen05: {
    architecture: "qwen2",
    vocabSize: 151936,
    hiddenSize: 896,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    intermediateSize: 4864,
    maxPositions: 32768,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
    tieEmbeddings: true,
  },
};
export type Shape = keyof typeof SHAPES;

/** Writes the checkpoint of `shape` into `dir` (created if needed). */
export const makeShapedCheckpoint = (shape: Shape, dir: string, seed = 0) =>
  Effect.gen(function* () {
    const config = SHAPES[shape];
    const params = initParams(config, Rng.seeded(seed));
    yield* saveCheckpoint(dir, config, params, {}, {
      baseConfig: { bos_token_id: 0, eos_token_id: 0 },
    }).pipe(Effect.ensuring(Effect.sync(() => disposeParams(params))));
    return dir;
  });

if (import.meta.main) {
  const shape = Deno.args[0];
  if (shape !== "smol" && shape !== "qwen05") {
    console.error("usage: tools/make_shaped_checkpoint.ts smol|qwen05 [DIR]");
    Deno.exit(2);
  }
  const dir = Deno.args[1] ?? await Deno.makeTempDir({ prefix: `${shape}-shaped-` });
  await Effect.runPromise(useBackend("cpu")); // the plain cpu backend, without tfjs's Node.js banner
  console.log(await Effect.runPromise(makeShapedCheckpoint(shape, dir)));
}
