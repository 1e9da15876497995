/**
 * Times a training step (forward + backward + AdamW) and batched greedy generation on the current tfjs
 * backend, for sizing pipelines. Keep runs short: the machines are shared.
 *
 *   deno run -A bench/model_bench.ts train D,L,H,KV,FF,B,T,V [weightedFraction] [steps]
 *   deno run -A bench/model_bench.ts generate D,L,H,KV,FF,V batch promptLen newTokens
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { decodeModelConfig, type ModelConfig } from "../src/model/config.ts";
import { generate } from "../src/model/generate.ts";
import { countParams, initParams } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { Rng } from "../src/util/rng.ts";
import { optimizerStep } from "../src/train/step.ts";

await tf.setBackend(Deno.env.get("TFJS_BACKEND") ?? "cpu");
const [mode, dims, ...rest] = Deno.args;
const n = dims.split(",").map(Number);
const config = (d: number, l: number, h: number, kv: number, ff: number, v: number): ModelConfig =>
  Effect.runSync(decodeModelConfig({
    architecture: "llama",
    vocabSize: v,
    hiddenSize: d,
    numLayers: l,
    numHeads: h,
    numKvHeads: kv,
    intermediateSize: ff,
    maxPositions: 512,
    tieEmbeddings: true,
  }, "bench"));
const rng = Rng.seeded(1);

if (mode === "train") {
  const [d, l, h, kv, ff, b, t, v] = n;
  const c = config(d, l, h, kv, ff, v);
  const fraction = Number(rest[0] ?? 1), steps = Number(rest[1] ?? 3);
  const params = initParams(c, rng), opt = new AdamW(params, { weightDecay: 0.01 });
  const ids = Int32Array.from({ length: b * t }, () => rng.int(v));
  // the last `fraction` of every row is weighted, like a response (or key span) after a prompt
  const weights = Float32Array.from({ length: b * t }, (_, i) => (i % t) >= t * (1 - fraction) ? 1 : 0);
  const mb = { ids, weights, batch: b, seqLen: t };
  optimizerStep(params, c, opt, [mb], { lr: 1e-3, clipNorm: 1 }); // warm-up (JIT)
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) optimizerStep(params, c, opt, [mb], { lr: 1e-3, clipNorm: 1 });
  const ms = (performance.now() - t0) / steps;
  console.log(
    `train ${tf.getBackend()} D=${d} L=${l} H=${h} kv=${kv} FF=${ff} V=${v} B=${b} T=${t} weighted=${fraction} ` +
      `params=${countParams(c)}: ${ms.toFixed(0)} ms/step, ${(b * t / ms * 1000).toFixed(0)} tokens/s`,
  );
} else if (mode === "generate") {
  const [d, l, h, kv, ff, v] = n;
  const [batch, promptLen, newTokens] = rest.map(Number);
  const c = config(d, l, h, kv, ff, v);
  const params = initParams(c, rng);
  const prompts = Array.from({ length: batch }, () => Array.from({ length: promptLen }, () => rng.int(v)));
  generate(params, c, prompts.slice(0, 2), { maxNewTokens: 4 }); // warm-up (JIT)
  const t0 = performance.now();
  generate(params, c, prompts, { maxNewTokens: 1 });
  const prefill = performance.now() - t0;
  const t1 = performance.now();
  const out = generate(params, c, prompts, { maxNewTokens: newTokens });
  const total = performance.now() - t1, made = out.reduce((s, r) => s + r.length, 0);
  console.log(
    `generate ${tf.getBackend()} D=${d} L=${l} V=${v} batch=${batch} prompt=${promptLen} new=${newTokens}: ` +
      `prefill ${prefill.toFixed(0)} ms, total ${total.toFixed(0)} ms, ` +
      `${(made / ((total - prefill) / 1000)).toFixed(0)} new tokens/s after prefill, ` +
      `${(made / (total / 1000)).toFixed(0)} tokens/s overall`,
  );
}
