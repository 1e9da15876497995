/**
 * A faster float32 `Add` for the tfjs cpu backend, for the one case training spends its time on: two
 * tensors of the same shape (residual connections, and backprop summing the gradients of a tensor used
 * twice). The stock kernel handles broadcasting with an index modulo and a function call per element;
 * this loop does neither. Every other case (broadcasting, int32, complex) goes to the stock kernel.
 *
 * The result is bit-identical to the stock kernel's (both add two float32 values in double precision and
 * round once), so installing it changes speed only.
 */
import * as tf from "@tensorflow/tfjs";

type CpuBackend = {
  data: { get(id: unknown): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: string, values: Float32Array): tf.TensorInfo;
};

/** The stock cpu Add, which `fastAdd` falls back to; set by `installFastAdd`. */
let stockAdd: tf.KernelFunc | undefined;

const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** The replacement kernel function; exported so a test can check that tfjs dispatches Add to it. */
export const fastAdd: tf.KernelFunc = (args) => {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const backend = args.backend as unknown as CpuBackend;
  if (a.dtype === "float32" && b.dtype === "float32" && sameShape(a.shape, b.shape)) {
    const av = backend.data.get(a.dataId).values, bv = backend.data.get(b.dataId).values;
    if (av instanceof Float32Array && bv instanceof Float32Array) {
      const out = new Float32Array(av.length);
      for (let i = 0; i < out.length; i++) out[i] = av[i] + bv[i];
      return backend.makeTensorInfo([...a.shape], "float32", out);
    }
  }
  return stockAdd!(args);
};

/** Replaces the cpu backend's Add kernel (once per process); idempotent. */
export const installFastAdd = (): void => {
  if (stockAdd !== undefined) return;
  const stock = tf.getKernel("Add", "cpu");
  if (!stock) return; // no cpu backend registered: nothing to speed up
  stockAdd = stock.kernelFunc;
  tf.unregisterKernel("Add", "cpu");
  tf.registerKernel({ ...stock, kernelFunc: fastAdd });
};
