/**
 * Every architecture through the entry points callers use (initParams, forward, logitsAt via optimizerStep,
 * createCache, generate): the cpu kernels equal the stock-tfjs path in values and gradients, the KV cache
 * with left padding reproduces the full forward pass bit for bit, training lowers the loss, and limits a
 * model cannot compute exactly are refused.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { decodeModelConfig, type ModelConfig } from "../src/model/config.ts";
import { generate } from "../src/model/generate.ts";
import { createCache, disposeParams, forward, initParams, paramShapes } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { Rng } from "../src/util/rng.ts";
import { optimizerStep } from "../src/train/step.ts";
import { shiftedLoss } from "../src/train/loss.ts";
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "./assert.ts";
import { registerReferenceBackend } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

const configOf = (fields: Record<string, unknown>): ModelConfig =>
  Effect.runSync(decodeModelConfig({
    vocabSize: 40,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 24,
    maxPositions: 32,
    tieEmbeddings: false,
    ...fields,
  }, "test"));

const CONFIGS: Record<string, ModelConfig> = {
  llama: configOf({ architecture: "llama" }),
  mistral: configOf({ architecture: "mistral", headDim: 8, slidingWindow: 16 }),
  qwen2: configOf({ architecture: "qwen2", tieEmbeddings: true }),
  qwen3: configOf({ architecture: "qwen3", headDim: 6, tieEmbeddings: true }),
  gpt2: configOf({ architecture: "gpt2", numKvHeads: 4, intermediateSize: 64, tieEmbeddings: true }),
};

/** Parameters with larger weights and non-trivial norms/biases, so every parameter matters. */
const model = (c: ModelConfig, seed: number) => {
  const params = initParams(c, Rng.seeded(seed));
  const rng = Rng.seeded(seed + 100);
  params.forEach((v) => {
    const noise = Float32Array.from({ length: v.size }, () => rng.normal());
    tf.tidy(() => v.assign(v.rank > 1 ? tf.mul(v, 10) : tf.add(v, tf.mul(tf.tensor(noise, v.shape), 0.1))));
  });
  return params;
};

Deno.test("architecture-specific parameters are present with HF names and shapes", () => {
  const names = (c: ModelConfig) => [...paramShapes(c).keys()];
  assert(names(CONFIGS.qwen2).includes("model.layers.0.self_attn.k_proj.bias"));
  assert(!names(CONFIGS.llama).some((n) => n.endsWith(".bias")));
  assertEquals(paramShapes(CONFIGS.qwen3).get("model.layers.1.self_attn.q_norm.weight"), [6]);
  assertEquals(paramShapes(CONFIGS.qwen3).get("model.layers.1.self_attn.q_proj.weight"), [24, 16]);
  assertEquals(paramShapes(CONFIGS.qwen3).get("model.layers.1.self_attn.o_proj.weight"), [16, 24]);
  assertEquals(paramShapes(CONFIGS.gpt2).get("transformer.h.0.attn.c_attn.weight"), [16, 48]);
  assertEquals(paramShapes(CONFIGS.gpt2).get("transformer.wpe.weight"), [32, 16]);
  assert(!paramShapes(CONFIGS.gpt2).has("lm_head.weight"));
  const init = initParams(CONFIGS.gpt2, Rng.seeded(1));
  assertEquals([...init.get("transformer.h.0.ln_1.bias")!.dataSync()].every((x) => x === 0), true);
  assertEquals([...init.get("transformer.h.0.ln_1.weight")!.dataSync()].every((x) => x === 1), true);
  disposeParams(init);
});

for (const [name, c] of Object.entries(CONFIGS)) {
  Deno.test(`${name}: cpu kernels equal the stock-tfjs path (logits, loss, every gradient)`, async () => {
    await registerReferenceBackend();
    const ids = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const weights = Float32Array.from([0, 1, 1, 1, 1, 0.5, 0, 0, 1, 1, 2, 1]);
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const params = model(c, 6);
      let out = { loss: 0, logits: [] as number[], grads: new Map<string, number[]>() };
      tf.tidy(() => {
        const idsT = tf.tensor2d(ids, [2, 6], "int32");
        const { value, grads } = tf.variableGrads(() =>
          shiftedLoss(forward(params, c, idsT), ids, weights).loss
        );
        const names = new Map([...params].map(([k, v]) => [v.name, k]));
        out = {
          loss: value.dataSync()[0],
          logits: [...forward(params, c, idsT).dataSync()],
          grads: new Map(Object.entries(grads).map(([n, g]) => [names.get(n)!, [...g.dataSync()]])),
        };
      });
      disposeParams(params);
      return out;
    };
    const ref = await run("cpu-ref"), fast = await run("cpu");
    await tf.setBackend("cpu");
    const close = (a: number[], b: number[], what: string) => {
      const scale = Math.max(1, ...b.map(Math.abs));
      a.forEach((x, i) => assertAlmostEquals(x, b[i], 2e-5 * scale, `${what}[${i}]: ${x} vs ${b[i]}`));
    };
    close(fast.logits, ref.logits, "logits");
    assertAlmostEquals(fast.loss, ref.loss, 1e-5);
    assertEquals([...fast.grads.keys()].sort(), [...paramShapes(c).keys()].sort());
    for (const [param, g] of fast.grads) {
      assert(g.some((x) => x !== 0), `${param} gets no gradient`);
      close(g, ref.grads.get(param)!, param);
    }
  });

  Deno.test(`${name}: cached, left-padded decoding is bit-identical to the full forward pass`, () => {
    const params = model(c, 2);
    tf.tidy(() => {
      const seq = [3, 1, 4, 1, 5, 9, 2, 6];
      const full = forward(params, c, tf.tensor2d([seq], undefined, "int32")).arraySync() as number[][][];
      const cache = createCache(c, 2, 12, [2, 0]);
      const first = forward(
        params,
        c,
        tf.tensor2d([[0, 0, seq[0], seq[1]], [7, 7, 7, 7]], undefined, "int32"),
        cache,
      )
        .arraySync() as number[][][];
      assertEquals(first[0][3], full[0][1]);
      for (let t = 2; t < seq.length; t++) {
        const step = forward(params, c, tf.tensor2d([[seq[t]], [7]], undefined, "int32"), cache, {
          lastPositionOnly: true,
        }).arraySync() as number[][][];
        assertEquals(step[0][0], full[0][t]);
      }
    });
    const prompts = [[1, 2, 3], [4, 5, 6, 7, 8]];
    const batched = generate(params, c, prompts, { maxNewTokens: 6 });
    prompts.forEach((p, i) => assertEquals(generate(params, c, [p], { maxNewTokens: 6 })[0], batched[i]));
    disposeParams(params);
  });

  Deno.test(`${name}: training steps lower the loss`, () => {
    const params = initParams(c, Rng.seeded(3));
    const optimizer = new AdamW(params);
    const batch = { ids: [[1, 5, 9, 13, 17, 21, 25, 29]], weights: [[0, 1, 1, 1, 1, 1, 1, 1]] };
    const losses: number[] = [];
    for (let i = 0; i < 12; i++) {
      losses.push(optimizerStep(params, c, optimizer, [batch], { lr: 1e-2, clipNorm: 1 }).loss);
    }
    assert(losses.every(Number.isFinite) && losses.at(-1)! < 0.5 * losses[0], `losses ${losses}`);
    disposeParams(params);
  });
}

Deno.test("positions a model cannot compute exactly are refused, not computed differently", () => {
  for (const [name, limit] of [["gpt2", 32], ["mistral", 16]] as const) {
    const c = CONFIGS[name];
    const params = initParams(c, Rng.seeded(1));
    tf.tidy(() => forward(params, c, tf.zeros([1, limit], "int32") as tf.Tensor2D));
    assertThrows(
      () => tf.tidy(() => forward(params, c, tf.zeros([1, limit + 1], "int32") as tf.Tensor2D)),
      RangeError,
      "positions",
    );
    disposeParams(params);
  }
  // RoPE models without a window extrapolate past max_position_embeddings as HF does.
  const params = initParams(CONFIGS.llama, Rng.seeded(1));
  tf.tidy(() => forward(params, CONFIGS.llama, tf.zeros([1, 40], "int32") as tf.Tensor2D));
  disposeParams(params);
});
