/**
 * The measuring side of tests/perf_leaks.test.ts, run as its own process with --v8-flags=--expose-gc so
 * that live memory can be read after a full collection (resident memory cannot show a leak: freed
 * memory the process still holds absorbs it). Argument: JSON {slow}. Prints one JSON object per case.
 */
import * as tf from "@tensorflow/tfjs";
import { type Blas, loadBlas } from "../src/backend/blas.ts";
import { installMatmul } from "../src/backend/matmul.ts";
import { generate } from "../src/model/generate.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { Rng } from "../src/util/rng.ts";
import { optimizerStep } from "../src/train/step.ts";
import { leakCases, leakConfig, type LeakResult } from "./perf_leaks_cases.ts";

await tf.setBackend("cpu");
tf.enableProdMode();

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

let blas: Blas | undefined;
try {
  blas = loadBlas();
} catch { /* the plain path is measured alone */ }

/** Live JS memory after a full collection: the V8 heap and the typed arrays' backing stores. */
const live = () => {
  gc();
  gc();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
};

const config = leakConfig;

const makeCall = (kind: "train" | "generate", seed: number) => {
  const rng = Rng.seeded(seed);
  const params = initParams(config, rng);
  if (kind === "train") {
    const opt = new AdamW(params, { weightDecay: 0.01 });
    const [batch, seqLen] = [4, 32];
    const mb = {
      ids: Int32Array.from({ length: batch * seqLen }, () => rng.int(config.vocabSize)),
      weights: new Float32Array(batch * seqLen).fill(1),
      batch,
      seqLen,
    };
    return { params, call: () => void optimizerStep(params, config, opt, [mb], { lr: 1e-3, clipNorm: 1 }) };
  }
  const prompts = Array.from({ length: 4 }, () => Array.from({ length: 8 }, () => rng.int(config.vocabSize)));
  return { params, call: () => void generate(params, config, prompts, { maxNewTokens: 16 }) };
};

const { slow } = JSON.parse(Deno.args[0] ?? "{}") as { slow?: boolean };
for (const c of leakCases(slow === true, blas !== undefined)) {
  installMatmul(c.path === "cpu-blas" ? blas : undefined);
  const { params, call } = makeCall(c.kind, 5);
  // A leak of `leaked` bytes per call: a kept copy, written as a real copy would be.
  const kept: Float32Array[] = [];
  const f = () => {
    call();
    if (c.leaked > 0) kept.push(new Float32Array(c.leaked / 4).fill(1));
  };
  for (let i = 0; i < c.warm; i++) f();
  const tensors = tf.memory().numTensors;
  let tensorDrift: number | undefined;
  const marks = [live()];
  for (let w = 0; w < 3; w++) {
    for (let i = 0; i < c.window; i++) {
      f();
      if (tensorDrift === undefined && tf.memory().numTensors !== tensors) {
        tensorDrift = tf.memory().numTensors - tensors;
      }
    }
    marks.push(live());
  }
  // A leak adds `window x leaked` to every window; the median of the three windows' rises discounts a
  // one-off change in any one of them: a growth (a cache filled once) that would fail a clean case, or a
  // shrink (memory freed once) that would hide a leak (seen in CI: the smaller of the last two rises, the
  // earlier statistic, let a leaking case through once in four runs).
  const rises = [marks[1] - marks[0], marks[2] - marks[1], marks[3] - marks[2]].sort((a, b) => a - b);
  const rise = rises[1];
  kept.splice(0);
  disposeParams(params);
  installMatmul(undefined);
  const result: LeakResult = { ...c, rise, tensorDrift: tensorDrift ?? 0 };
  console.log(JSON.stringify(result));
}
