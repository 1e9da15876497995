import * as tf from "@tensorflow/tfjs";
import type { Params } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { loadOptimizerState, saveOptimizerState } from "../src/train/optimizer_state.ts";
import { Effect, Exit } from "effect";
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "./assert.ts";

await tf.setBackend("cpu");

const makeParams = (): Params =>
  new Map<string, tf.Variable>([
    ["w", tf.variable(tf.tensor2d([[1, -2]]))], // a matrix: decayed
    ["norm", tf.variable(tf.tensor1d([1, -2]))], // 1-D: never decayed
  ]);

const grads = [[0.5, -1], [-0.25, 2]].map((g) =>
  new Map([["w", Float32Array.from(g)], ["norm", Float32Array.from(g)]])
);

Deno.test("AdamW matches a hand-computed two-step update; no decay on 1-D tensors", () => {
  const params = makeParams();
  const opt = new AdamW(params, { weightDecay: 0.1 });
  // Step 1 by hand: m = 0.1 g, v = 0.001 g^2, so m^ / sqrt(v^) = sign(g) and the step is lr * sign(g);
  // the matrix first shrinks by 1 - lr * wd = 0.99.
  opt.step(grads[0], 0.1);
  const w1 = params.get("w")!.dataSync(), n1 = params.get("norm")!.dataSync();
  assertAlmostEquals(w1[0], 0.99 - 0.1, 1e-6);
  assertAlmostEquals(w1[1], -1.98 + 0.1, 1e-6);
  assertAlmostEquals(n1[0], 0.9, 1e-6);
  assertAlmostEquals(n1[1], -1.9, 1e-6);
  // Step 2 (m = [0.02, 0.11], v = [3.1225e-4, 4.999e-3], bias corrections 0.19 and 0.001999):
  opt.step(grads[1], 0.1);
  const w2 = params.get("w")!.dataSync(), n2 = params.get("norm")!.dataSync();
  assertAlmostEquals(w2[0], 0.854466299, 1e-6);
  assertAlmostEquals(w2[1], -1.897810353, 1e-6);
  assertAlmostEquals(n2[0], 0.873366299, 1e-6);
  assertAlmostEquals(n2[1], -1.936610353, 1e-6);
  assertEquals(opt.stepCount, 2);
  params.forEach((v) => v.dispose());
});

Deno.test("exported state resumes bit-exactly, also through optimizer.safetensors", async () => {
  const a = makeParams(), opt = new AdamW(a, { weightDecay: 0.1 });
  opt.step(grads[0], 0.1);
  const dir = await Deno.makeTempDir();
  await Effect.runPromise(saveOptimizerState(`${dir}/optimizer.safetensors`, opt.exportState()));

  const b: Params = new Map([...a].map(([k, v]) => [k, tf.tidy(() => tf.variable(v.clone()))]));
  const resumed = new AdamW(b, { weightDecay: 0.1 });
  resumed.importState(await Effect.runPromise(loadOptimizerState(`${dir}/optimizer.safetensors`, b)));
  opt.step(grads[1], 0.1);
  resumed.step(grads[1], 0.1);
  for (const k of a.keys()) assertEquals([...b.get(k)!.dataSync()], [...a.get(k)!.dataSync()]);

  // a state that does not fit the parameters is refused
  const other: Params = new Map<string, tf.Variable>([
    ["w", tf.variable(tf.zeros([1, 3]))],
    ["norm", tf.variable(tf.zeros([2]))],
  ]);
  const exit = await Effect.runPromiseExit(loadOptimizerState(`${dir}/optimizer.safetensors`, other));
  assert(Exit.isFailure(exit) && JSON.stringify(exit.cause).includes("CheckpointMalformed"));
  assertThrows(() => new AdamW(other).importState(opt.exportState()), RangeError);
  [a, b, other].forEach((p) => p.forEach((v) => v.dispose()));
  await Deno.remove(dir, { recursive: true });
});
