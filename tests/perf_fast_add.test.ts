/**
 * The cpu backend's replacement Add kernel (src/backend/fast_add.ts): registered by useBackend("cpu") and
 * dispatched to by tf.add, bit-identical to the stock kernel on
 * same-shape float32 inputs (compared against an explicit float32 rounding of the double sum), and the
 * stock behaviour for broadcasting and int32, in values and in gradients.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import { fastAdd } from "../src/backend/fast_add.ts";
import { assert, assertEquals } from "./assert.ts";

await Effect.runPromise(useBackend("cpu"));

Deno.test('fast Add: useBackend("cpu") registers it and tf.add runs it', () => {
  // Registration: the kernel tfjs looks up for Add on cpu is ours, not the stock one.
  assert(tf.getKernel("Add", "cpu")?.kernelFunc === fastAdd, "the cpu Add kernel is not fastAdd");
  // Dispatch: a kernel-level spy (registered under the same name) sees tf.add call through to it.
  const registered = tf.getKernel("Add", "cpu")!;
  let calls = 0;
  tf.unregisterKernel("Add", "cpu");
  tf.registerKernel({
    ...registered,
    kernelFunc: (args) => {
      calls++;
      return registered.kernelFunc(args);
    },
  });
  try {
    tf.tidy(() => tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4])).dataSync());
  } finally {
    tf.unregisterKernel("Add", "cpu");
    tf.registerKernel(registered);
  }
  assertEquals(calls, 1);
});

Deno.test("fast Add: same-shape float32 sums are the float32 rounding of the exact sum", () => {
  const a = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e3);
  const b = Float32Array.from({ length: 1000 }, (_, i) => Math.cos(i * 7) * 1e-3);
  const got = tf.tidy(() => tf.add(tf.tensor2d(a, [10, 100]), tf.tensor2d(b, [10, 100])).dataSync());
  for (let i = 0; i < a.length; i++) assert(got[i] === Math.fround(a[i] + b[i]), `element ${i}`);
});

Deno.test("fast Add: broadcasting, int32 and gradients behave as the stock kernel", () => {
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const row = tf.add(tf.tensor2d([[1, 2, 3], [4, 5, 6]]), tf.tensor1d([10, 20, 30]));
    assertEquals(Array.from(row.dataSync()), [11, 22, 33, 14, 25, 36]);
    assertEquals(row.shape, [2, 3]);
    const ints = tf.add(tf.tensor1d([1, 2], "int32"), tf.tensor1d([3, 4], "int32"));
    assertEquals(ints.dtype, "int32");
    assertEquals(Array.from(ints.dataSync()), [4, 6]);
    // x is used twice: backprop sums its two gradients with Add.
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.add(tf.mul(x, x), x)))(tf.tensor1d([1, 2, 3]));
    assertEquals(Array.from(g.dataSync()), [3, 5, 7]);
  });
  assertEquals(tf.memory().numTensors, before);
});
