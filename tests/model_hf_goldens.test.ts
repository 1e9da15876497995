/**
 * Tiny Hugging Face checkpoints of each architecture against an independent PyTorch implementation
 * (tools/reference/, goldens in fixtures/goldens/<name>/golden.json, made by make_goldens.py; no Python
 * needed here). Covers single-file and sharded safetensors, F32/F16/BF16 storage, GPT-2's unprefixed
 * names and mask buffers. Logits and score log-probabilities within 1e-4; greedy ids identical, from
 * batched generation with the KV cache and from the `generate` command.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { runGenerate } from "../src/cli/generate.ts";
import { runScore } from "../src/cli/score.ts";
import { loadCheckpoint } from "../src/model/checkpoint.ts";
import { generate } from "../src/model/generate.ts";
import { disposeParams, forward } from "../src/model/model.ts";
import { assert, assertEquals } from "./assert.ts";
import {
  golden,
  GOLDEN_NAMES,
  goldensRoot,
  maxAbsDiff,
  registerReferenceBackend,
} from "./model_test_helpers.ts";

await tf.setBackend("cpu");

const root = goldensRoot;
const NAMES = GOLDEN_NAMES;

Deno.test("the goldens cover every architecture", () => {
  assertEquals(
    NAMES.map((n) => golden(n).architecture).sort(),
    [
      "GPT2LMHeadModel",
      "LlamaForCausalLM",
      "LlamaForCausalLM",
      "MistralForCausalLM",
      "Qwen2ForCausalLM",
      "Qwen3ForCausalLM",
    ],
  );
});

for (const name of NAMES) {
  Deno.test(`${name}: logits within 1e-4 of PyTorch, batched greedy ids identical`, async () => {
    const g = golden(name);
    const { config, params } = await Effect.runPromise(loadCheckpoint(`${root}${name}`));
    try {
      for (const c of g.cases) {
        const logits = tf.tidy(() =>
          forward(params, config, tf.tensor2d([c.ids], undefined, "int32")).dataSync() as Float32Array
        );
        const err = maxAbsDiff(logits, c.logits.flat());
        assert(err <= 1e-4, `${name} prompt of ${c.ids.length}: max logit error ${err}`);
      }
      // Both prompts at once: left padding, the KV cache and the batch must not change a single id.
      const batched = generate(params, config, g.cases.map((c) => c.ids), { maxNewTokens: 8 });
      assertEquals(batched, g.cases.map((c) => c.greedy));
    } finally {
      disposeParams(params);
    }
  });

  Deno.test(`${name}: score and generate commands agree with PyTorch`, async () => {
    const g = golden(name);
    for (const c of g.cases) {
      const scored = await Effect.runPromise(runScore({ model: `${root}${name}`, ids: c.ids.join(",") }));
      assertEquals(scored.tokens.map((t) => t.id), c.ids);
      assertEquals(scored.tokens[0].logprob, null);
      assertEquals(scored.tokens.map((t) => t.text), c.ids.map(() => null)); // no tokenizer files
      const err = maxAbsDiff(scored.tokens.slice(1).map((t) => t.logprob!), c.logprobs.slice(1) as number[]);
      assert(err <= 1e-4, `${name}: max logprob error ${err}`);
      const out = await Effect.runPromise(
        runGenerate({ model: `${root}${name}`, ids: c.ids.join(","), maxNewTokens: c.greedy.length }),
      );
      assertEquals(out, { ids: c.greedy, text: null });
    }
  });
}

Deno.test("the stock-tfjs path (other backends) also matches the goldens", async () => {
  await registerReferenceBackend();
  await tf.setBackend("cpu-ref");
  try {
    for (const name of ["gpt2", "qwen2", "qwen3"]) {
      const c = golden(name).cases[0];
      const { config, params } = await Effect.runPromise(loadCheckpoint(`${root}${name}`));
      const logits = tf.tidy(() =>
        forward(params, config, tf.tensor2d([c.ids], undefined, "int32")).dataSync() as Float32Array
      );
      disposeParams(params);
      const err = maxAbsDiff(logits, c.logits.flat());
      assert(err <= 1e-4, `${name} on cpu-ref: max logit error ${err}`);
    }
  } finally {
    await tf.setBackend("cpu");
  }
});
