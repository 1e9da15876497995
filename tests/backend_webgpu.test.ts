/**
 * The webgpu backend (src/backend/webgpu.ts): @tensorflow/tfjs-backend-webgpu on Deno's WebGPU. Checked
 * against the Hugging Face goldens (fixtures/goldens/: logits and score log-probabilities within 1e-4,
 * greedy ids identical, batched with the device KV cache, and the generate command) and against the cpu
 * backend: 10 optimizer steps of the tiny golden checkpoints (Llama with GQA, Qwen2, GPT-2) reach the cpu
 * backend's losses within 1e-4; with SFTKEY_SLOW=1 also 10 steps of the shipped base model (fixtures/base).
 *
 * Needs a WebGPU adapter: a GPU driver, or on a CPU-only machine Mesa's software Vulkan (`apt-get install
 * mesa-vulkan-drivers`; set XDG_RUNTIME_DIR to a writable directory to quiet its start-up). Deno 2.9.6
 * exposes navigator.gpu without `--unstable-webgpu`. Where navigator.gpu is absent or requestAdapter()
 * finds no adapter (and only then) every test here is skipped, with the reason printed.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import { webgpuUnavailable } from "../src/backend/webgpu.ts";
import { loadCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams, forward } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { teacherForcedLossAsync } from "../src/train/head_loss.ts";
import { optimizerStep, optimizerStepAsync } from "../src/train/step.ts";
import { runGenerate } from "../src/cli/generate.ts";
import { runScore } from "../src/cli/score.ts";
import { syntheticDocument } from "../src/data/corpus.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { generateAsync } from "../src/model/generate.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "./assert.ts";
import { golden, GOLDEN_NAMES, goldensRoot, maxAbsDiff } from "./model_test_helpers.ts";

const unavailable = await webgpuUnavailable();
if (unavailable !== undefined) console.log(`backend_webgpu: skipped: ${unavailable}`);
const ignore = unavailable !== undefined;

const goldens = goldensRoot;
const base = new URL("../fixtures/base", import.meta.url).pathname;
const NAMES = GOLDEN_NAMES;

const use = (name: "cpu" | "webgpu") => Effect.runPromise(useBackend(name));

Deno.test({
  name: "webgpu: every golden architecture matches PyTorch (logits, score, batched greedy ids, generate)",
  ignore,
  fn: async () => {
    assertEquals(await use("webgpu"), "webgpu");
    try {
      for (const name of NAMES) {
        const g = golden(name);
        const { config, params } = await Effect.runPromise(loadCheckpoint(`${goldens}${name}`));
        try {
          for (const c of g.cases) {
            const logits = forward(params, config, tf.tensor2d([c.ids], undefined, "int32"));
            const err = maxAbsDiff(await logits.data(), c.logits.flat());
            logits.dispose();
            assert(err <= 1e-4, `${name} prompt of ${c.ids.length}: max logit error ${err}`);
          }
          // Both prompts at once: left padding and the device KV cache must not change a single id.
          const batched = await generateAsync(params, config, g.cases.map((c) => c.ids), { maxNewTokens: 8 });
          assertEquals(batched, g.cases.map((c) => c.greedy), `${name}: batched greedy ids`);
        } finally {
          disposeParams(params);
        }
        const c = g.cases[0];
        const scored = await Effect.runPromise(
          runScore({ model: `${goldens}${name}`, ids: c.ids.join(",") }),
        );
        const err = maxAbsDiff(
          scored.tokens.slice(1).map((t) => t.logprob!),
          c.logprobs.slice(1) as number[],
        );
        assert(err <= 1e-4, `${name}: max score logprob error ${err}`);
        const out = await Effect.runPromise(
          runGenerate({ model: `${goldens}${name}`, ids: c.ids.join(","), maxNewTokens: c.greedy.length }),
        );
        assertEquals(out.ids, c.greedy, `${name}: generate command`);
      }
    } finally {
      await use("cpu");
    }
  },
});

// The base model's own kind of text: documents of its pretraining corpus, tokenised with its tokenizer.
const SEQ = 32;
const baseSequences = async () => {
  const tokenizer = await Effect.runPromise(loadTokenizer(`${base}/tokenizer.json`));
  return Array.from(
    { length: 40 },
    (_, i) => [tokenizer.eosId, ...tokenizer.encode(syntheticDocument(2026, i).text)].slice(0, SEQ),
  );
};

/** 40 random sequences of SEQ ids below `vocab` (for the tiny golden checkpoints, which know no text). */
const randomSequences = (vocab: number) => {
  const rng = Rng.seeded(11);
  return Array.from({ length: 40 }, () => Array.from({ length: SEQ }, () => rng.int(vocab)));
};

/** Microbatch `k` of `rows` sequences, weights mixed (0 on the first token, 0.5 on every third). */
const batchOf = (sequences: number[][], k: number, rows: number) => {
  const ids = new Int32Array(rows * SEQ), weights = new Float32Array(rows * SEQ);
  for (let r = 0; r < rows; r++) {
    const s = sequences[(k * rows + r) % sequences.length];
    ids.set(s, r * SEQ);
    for (let t = 1; t < s.length; t++) weights[r * SEQ + t] = t % 3 === 0 ? 0.5 : 1;
  }
  return { ids, weights, batch: rows, seqLen: SEQ };
};

/** Losses and gradient norms of 10 steps (two microbatches each) from the checkpoint `dir` on `backend`. */
const trainTen = async (backend: "cpu" | "webgpu", dir: string, sequences: number[][]) => {
  assertEquals(await use(backend), backend);
  const { config, params } = await Effect.runPromise(loadCheckpoint(dir));
  const optimizer = new AdamW(params, { weightDecay: 0.01 });
  const out: { loss: number; gradNorm: number }[] = [];
  try {
    for (let step = 0; step < 10; step++) {
      const mbs = [batchOf(sequences, 2 * step, 2), batchOf(sequences, 2 * step + 1, 2)];
      // The fine-tuning pipelines' learning rate.
      const options = { lr: 1e-3, clipNorm: 1 };
      const r = backend === "cpu"
        ? optimizerStep(params, config, optimizer, mbs, options)
        : await optimizerStepAsync(params, config, optimizer, mbs, options);
      assert(r.applied, `step ${step + 1} was not applied`);
      out.push({ loss: r.loss, gradNorm: r.gradNorm });
    }
  } finally {
    disposeParams(params);
  }
  return out;
};

/** Trains `dir` 10 steps on both backends and compares the losses (within 1e-4) and gradient norms. */
const compareTen = async (what: string, dir: string, sequences: number[][], minMove: number) => {
  const cpu = await trainTen("cpu", dir, sequences);
  const gpu = await trainTen("webgpu", dir, sequences).finally(() => use("cpu"));
  const worst = Math.max(...cpu.map((c, i) => Math.abs(c.loss - gpu[i].loss)));
  console.log(
    `${what}: losses ${cpu.map((c) => c.loss.toFixed(4)).join(" ")}; largest difference ${
      worst.toExponential(1)
    }`,
  );
  // The steps must move the model, so that the comparison covers ten real updates.
  assert(
    Math.max(...cpu.map((c) => Math.abs(c.loss - cpu[0].loss))) > minMove,
    `${what}: cpu losses did not move`,
  );
  cpu.forEach((c, i) => {
    const err = Math.abs(c.loss - gpu[i].loss);
    assert(
      err <= 1e-4,
      `${what} step ${i + 1}: loss ${gpu[i].loss} on webgpu, ${c.loss} on cpu (error ${err})`,
    );
    assert(
      Math.abs(c.gradNorm - gpu[i].gradNorm) <= 1e-3 * c.gradNorm,
      `${what} step ${i + 1}: gradient norms`,
    );
  });
};

Deno.test({
  name: "webgpu: 10 training steps of the tiny golden checkpoints reach the cpu backend's losses within 1e-4",
  ignore,
  fn: async () => {
    // Llama with grouped-query attention, Qwen2 (q/k/v biases, tied head) and GPT-2 (LayerNorm, GELU, Conv1D).
    for (const name of ["llama_gqa", "qwen2", "gpt2"]) {
      await compareTen(name, `${goldens}${name}`, randomSequences(96), 0.01);
    }
  },
});

Deno.test({
  name: "webgpu: the teacher-forced loss (evaluation's key loss, held-out loss) equals the cpu backend's",
  ignore,
  fn: async () => {
    const sequences = randomSequences(96).slice(0, 3).map((ids) => ({
      ids,
      weights: ids.map((_, t) => (t >= 20 ? 1 : 0)),
    }));
    const lossOn = async (backend: "cpu" | "webgpu") => {
      assertEquals(await use(backend), backend);
      const { config, params } = await Effect.runPromise(loadCheckpoint(`${goldens}qwen2`));
      try {
        return await teacherForcedLossAsync(params, config, sequences);
      } finally {
        disposeParams(params);
      }
    };
    const cpu = await lossOn("cpu");
    const gpu = await lossOn("webgpu").finally(() => use("cpu"));
    assertEquals(gpu.weightSum, cpu.weightSum);
    assert(Math.abs(gpu.lossSum - cpu.lossSum) <= 1e-4 * cpu.lossSum, `${gpu.lossSum} vs ${cpu.lossSum}`);
  },
});

// The shipped base model (3.7 M parameters): 1.5-2.5 min on the shared 2-core machine, so in the slow tier.
Deno.test({
  name:
    "webgpu: 10 training steps of the base model reach the cpu backend's losses within 1e-4 (SFTKEY_SLOW=1)",
  ignore: ignore || Deno.env.get("SFTKEY_SLOW") !== "1",
  fn: async () => {
    await compareTen("base", base, await baseSequences(), 0.2);
  },
});
