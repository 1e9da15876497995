/**
 * The "webgpu" backend: @tensorflow/tfjs-backend-webgpu on Deno's WebGPU (navigator.gpu; Deno 2.9.6 has it
 * without `--unstable-webgpu`, which the launcher still passes for older versions). It needs no
 * CUDA install: on a machine with a GPU it runs through the GPU's Vulkan (or Metal / D3D12) driver, and on
 * a CPU-only machine with Mesa's software Vulkan (`mesa-vulkan-drivers`, the llvmpipe adapter) it runs on
 * the CPU, which is how the tests check it where there is no GPU.
 *
 * One constraint shapes the code that computes with a model: under Deno a tensor on this backend cannot be read synchronously
 * (tfjs's readSync copies through a 2-D canvas context, which Deno does not have), only with `await
 * t.data()`. After that the values stay cached on the host, so a later `dataSync()` of the same tensor
 * works. `readsSynchronously()` tells callers which kind of backend is active, and `onHost` is the await
 * that makes sync reads of given tensors safe.
 *
 * The package is imported dynamically, so the other backends never load it.
 */
import * as tf from "@tensorflow/tfjs";

/** Why WebGPU cannot be used here, or undefined when an adapter exists. */
export const webgpuUnavailable = async (): Promise<string | undefined> => {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
  if (gpu === undefined) {
    return "navigator.gpu is absent (this Deno has no WebGPU; older versions need --unstable-webgpu)";
  }
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (adapter === null) {
    return "navigator.gpu.requestAdapter() found no adapter (no GPU driver; on a CPU-only machine install " +
      "Mesa's software Vulkan: apt-get install mesa-vulkan-drivers)";
  }
  return undefined;
};

/** Registers and activates the webgpu backend; throws with the reason when it cannot. */
export const setWebgpuBackend = async (): Promise<void> => {
  const why = await webgpuUnavailable();
  if (why !== undefined) throw new Error(why);
  const specifier = "@tensorflow/tfjs-backend-webgpu";
  await import(specifier);
  if (!(await tf.setBackend("webgpu"))) throw new Error("tf.setBackend('webgpu') returned false");
};

/** Whether the active backend can read a tensor with dataSync (every backend but webgpu). */
export const readsSynchronously = (): boolean => tf.getBackend() !== "webgpu";

/**
 * Waits until the values of `tensors` are on the host, so that their dataSync() works on every backend
 * (on webgpu it fails for a tensor computed on the device and never awaited). Immediate elsewhere.
 */
export const onHost = async (tensors: Iterable<tf.Tensor>): Promise<void> => {
  if (readsSynchronously()) return;
  await Promise.all([...tensors].map((t) => t.data()));
};

/**
 * A computation written once for both kinds of backend: a generator that yields the tensors it is about
 * to read with dataSync() and is resumed when that is safe. `runReading` drives it synchronously (every
 * backend but webgpu; it throws there), `runReadingAsync` awaits the reads (every backend). `around` wraps
 * each resumption (e.g. to set up state that the synchronous code between two reads expects).
 */
export type Reading<R> = Generator<Iterable<tf.Tensor>, R, void>;

export const runReading = <R>(program: Reading<R>): R => {
  if (!readsSynchronously()) {
    throw new Error(
      `the ${tf.getBackend()} backend cannot read tensors synchronously; use the async variant`,
    );
  }
  let r = program.next();
  while (!r.done) r = program.next();
  return r.value;
};

export const runReadingAsync = async <R>(
  program: Reading<R>,
  around: <A>(f: () => A) => A = (f) => f(),
): Promise<R> => {
  let r = around(() => program.next());
  while (!r.done) {
    await onHost(r.value);
    r = around(() => program.next());
  }
  return r.value;
};
