/**
 * The webgpu backend (src/backend/webgpu.ts): @tensorflow/tfjs-backend-webgpu on Deno's WebGPU. Checked
 * against the Hugging Face goldens (fixtures/goldens/: logits and score log-probabilities within 1e-4,
 * greedy ids identical, batched with the KV cache) and against the cpu backend: 10 optimizer steps of the
 * shipped base model (fixtures/base) reach the cpu backend's losses within 1e-4.
 *
 * Needs `--unstable-webgpu` (the test task passes it) and a WebGPU adapter: a GPU driver, or on a CPU-only
 * machine Mesa's software Vulkan (`apt-get install mesa-vulkan-drivers`; set XDG_RUNTIME_DIR to a writable
 * directory to quiet its start-up). Where there is no adapter every test here is skipped, with the reason
 * printed; only then.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import { webgpuUnavailable } from "../src/backend/webgpu.ts";
import { loadCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams, forward } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { optimizerStep, optimizerStepAsync } from "../src/train/step.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "./assert.ts";

const unavailable = await webgpuUnavailable();
if (unavailable !== undefined) console.log(`backend_webgpu: skipped: ${unavailable}`);
const ignore = unavailable !== undefined;

const goldens = new URL("../fixtures/goldens/", import.meta.url).pathname;
const base = new URL("../fixtures/base", import.meta.url).pathname;
const NAMES = ["gpt2", "llama", "llama_gqa", "mistral", "qwen2", "qwen3"];

interface Golden {
  readonly cases: ReadonlyArray<{
    readonly ids: number[];
    readonly logits: number[][];
    readonly logprobs: Array<number | null>;
    readonly greedy: number[];
  }>;
}
const golden = (name: string): Golden => JSON.parse(Deno.readTextFileSync(`${goldens}${name}/golden.json`));

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assertEquals(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const use = (name: "cpu" | "webgpu") => Effect.runPromise(useBackend(name));

Deno.test({
  name: "webgpu: logits of every golden architecture within 1e-4 of PyTorch",
  ignore,
  fn: async () => {
    assertEquals(await use("webgpu"), "webgpu");
    for (const name of NAMES) {
      const { config, params } = await Effect.runPromise(loadCheckpoint(`${goldens}${name}`));
      try {
        for (const c of golden(name).cases) {
          const logits = forward(params, config, tf.tensor2d([c.ids], undefined, "int32"));
          const err = maxAbsDiff(await logits.data(), c.logits.flat());
          logits.dispose();
          assert(err <= 1e-4, `${name} prompt of ${c.ids.length}: max logit error ${err}`);
        }
      } finally {
        disposeParams(params);
      }
    }
  },
});

/** `rows` random sequences of `len` ids of the base model's vocabulary, with mixed weights (some 0). */
const batchOf = (rng: Rng, rows: number, len: number) => {
  const ids = Int32Array.from({ length: rows * len }, () => rng.int(1024));
  const weights = Float32Array.from({ length: rows * len }, (_, i) => (i % len < 4 ? 0 : 0.5 + (i % 3)));
  return { ids, weights, batch: rows, seqLen: len };
};

/** Losses and gradient norms of 10 steps (two microbatches each) from the base model on `backend`. */
const trainTen = async (backend: "cpu" | "webgpu") => {
  assertEquals(await use(backend), backend);
  const { config, params } = await Effect.runPromise(loadCheckpoint(base));
  const optimizer = new AdamW(params, { weightDecay: 0.01 });
  const rng = Rng.seeded(7);
  const out: { loss: number; gradNorm: number }[] = [];
  try {
    for (let step = 0; step < 10; step++) {
      const mbs = [batchOf(rng, 2, 48), batchOf(rng, 2, 48)];
      const options = { lr: 3e-3, clipNorm: 1 };
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

Deno.test({
  name: "webgpu: 10 training steps of the base model reach the cpu backend's losses within 1e-4",
  ignore,
  fn: async () => {
    const cpu = await trainTen("cpu");
    const gpu = await trainTen("webgpu");
    await use("cpu");
    console.log(cpu.map((c, i) => `step ${i + 1}: cpu ${c.loss.toFixed(6)} webgpu ${gpu[i].loss.toFixed(6)}`).join("\n"));
    // The steps must move the model: the loss of the last step is well below the first.
    assert(cpu[9].loss < cpu[0].loss - 0.05, `cpu losses ${cpu.map((c) => c.loss)}`);
    cpu.forEach((c, i) => {
      const err = Math.abs(c.loss - gpu[i].loss);
      assert(err <= 1e-4, `step ${i + 1}: loss ${gpu[i].loss} on webgpu, ${c.loss} on cpu (error ${err})`);
      assert(Math.abs(c.gradNorm - gpu[i].gradNorm) <= 1e-3 * c.gradNorm, `step ${i + 1}: gradient norms`);
    });
  },
});
