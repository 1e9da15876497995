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
import { runGenerate } from "../src/cli/generate.ts";
import { runScore } from "../src/cli/score.ts";
import { syntheticDocument } from "../src/data/corpus.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { generateAsync } from "../src/model/generate.ts";
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
const tokenizer = await Effect.runPromise(loadTokenizer(`${base}/tokenizer.json`));
const SEQ = 32;
const sequences = Array.from(
  { length: 40 },
  (_, i) => [tokenizer.eosId, ...tokenizer.encode(syntheticDocument(2026, i).text)].slice(0, SEQ),
);

/** Microbatch `k` of `rows` sequences, weights mixed (0 on the first token, 0.5 on every third). */
const batchOf = (k: number, rows: number) => {
  const ids = new Int32Array(rows * SEQ), weights = new Float32Array(rows * SEQ);
  for (let r = 0; r < rows; r++) {
    const s = sequences[(k * rows + r) % sequences.length];
    ids.set(s, r * SEQ);
    for (let t = 1; t < s.length; t++) weights[r * SEQ + t] = t % 3 === 0 ? 0.5 : 1;
  }
  return { ids, weights, batch: rows, seqLen: SEQ };
};

/** Losses and gradient norms of 10 steps (two microbatches each) from the base model on `backend`. */
const trainTen = async (backend: "cpu" | "webgpu") => {
  assertEquals(await use(backend), backend);
  const { config, params } = await Effect.runPromise(loadCheckpoint(base));
  const optimizer = new AdamW(params, { weightDecay: 0.01 });
  const out: { loss: number; gradNorm: number }[] = [];
  try {
    for (let step = 0; step < 10; step++) {
      const mbs = [batchOf(2 * step, 2), batchOf(2 * step + 1, 2)];
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

Deno.test({
  name: "webgpu: 10 training steps of the base model reach the cpu backend's losses within 1e-4",
  ignore,
  fn: async () => {
    const cpu = await trainTen("cpu");
    const gpu = await trainTen("webgpu").finally(() => use("cpu"));
    console.log(
      cpu.map((c, i) => `step ${i + 1}: cpu ${c.loss.toFixed(6)} webgpu ${gpu[i].loss.toFixed(6)}`).join(
        "\n",
      ),
    );
    // The steps (at the fine-tuning pipelines' learning rate, 1e-3) must move the model well away from
    // the base, so that the comparison covers ten real updates and not ten copies of the first loss.
    assert(
      Math.max(...cpu.map((c) => Math.abs(c.loss - cpu[0].loss))) > 0.2,
      `cpu losses ${cpu.map((c) => c.loss)}`,
    );
    cpu.forEach((c, i) => {
      const err = Math.abs(c.loss - gpu[i].loss);
      assert(err <= 1e-4, `step ${i + 1}: loss ${gpu[i].loss} on webgpu, ${c.loss} on cpu (error ${err})`);
      assert(Math.abs(c.gradNorm - gpu[i].gradNorm) <= 1e-3 * c.gradNorm, `step ${i + 1}: gradient norms`);
    });
  },
});
