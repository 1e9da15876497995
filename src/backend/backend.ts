/**
 * Choosing and setting up the tfjs backend.
 *
 * - "tensorflow": @tensorflow/tfjs-node-gpu (libtensorflow with CUDA). Optional: its npm install script
 *   downloads libtensorflow, which our machines cannot reach, so it is imported dynamically and only
 *   when its native binding is present (see README, "GPU backend").
 * - "cpu-blas": the tfjs cpu backend with the model's matrix products sent to OpenBLAS through Deno FFI
 *   (./blas.ts, ./matmul.ts). Optional: needs the library and --allow-ffi (granted by src/cli/launch.ts).
 * - "cpu": the plain tfjs cpu backend, always available.
 * - "webgpu": @tensorflow/tfjs-backend-webgpu on Deno's WebGPU (./webgpu.ts), the GPU path that needs no
 *   CUDA install. Optional: needs `--unstable-webgpu` (added by src/cli/launch.ts) and a WebGPU adapter.
 *
 * "auto" takes the first that loads of tensorflow, cpu-blas and cpu, in that order; it never picks webgpu,
 * which has not been measured on a real GPU yet (README, "GPU backend"). Every run records the backend
 * it used.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import { BackendUnavailable } from "../errors.ts";
import { type Blas, loadBlas } from "./blas.ts";
import { installMatmul } from "./matmul.ts";
import { installFastAdd } from "./fast_add.ts";
import { nodeGpuBinding } from "./gpu_binding.ts";
import { setWebgpuBackend } from "./webgpu.ts";

export const BackendName = Schema.Literal("auto", "tensorflow", "cpu-blas", "cpu", "webgpu");
export type BackendName = typeof BackendName.Type;

const loadTensorflow = Effect.tryPromise({
  try: async () => {
    if (!nodeGpuBinding()) {
      throw new Error(
        "the native binding of @tensorflow/tfjs-node-gpu is not installed (its install script downloads " +
          "libtensorflow; run `deno install --allow-scripts=npm:@tensorflow/tfjs-node-gpu` on a machine with " +
          "internet and CUDA)",
      );
    }
    const specifier = "@tensorflow/tfjs-node-gpu";
    await import(specifier);
    if (!(await tf.setBackend("tensorflow"))) throw new Error("tf.setBackend('tensorflow') returned false");
    return "tensorflow";
  },
  catch: (e) =>
    new BackendUnavailable({ backend: "tensorflow", reason: e instanceof Error ? e.message : String(e) }),
});

const loadCpu = Effect.tryPromise({
  try: async () => {
    if (!(await tf.setBackend("cpu"))) throw new Error("tf.setBackend('cpu') returned false");
    return "cpu";
  },
  catch: (e) =>
    new BackendUnavailable({ backend: "cpu", reason: e instanceof Error ? e.message : String(e) }),
});

// Opened once per process: the library stays loaded for the kernels that use it.
let blas: Blas | undefined;

/** The OpenBLAS file the cpu-blas backend loaded in this thread, if it did. */
export const loadedBlasPath = (): string | undefined => blas?.path;

const loadCpuBlas = (library?: string) =>
  Effect.tryPromise({
    try: async () => {
      blas ??= loadBlas(library);
      if (!(await tf.setBackend("cpu"))) throw new Error("tf.setBackend('cpu') returned false");
      installMatmul(blas);
      return "cpu-blas";
    },
    catch: (e) =>
      new BackendUnavailable({ backend: "cpu-blas", reason: e instanceof Error ? e.message : String(e) }),
  });

const loadWebgpu = Effect.tryPromise({
  try: async () => {
    await setWebgpuBackend();
    return "webgpu";
  },
  catch: (e) =>
    new BackendUnavailable({ backend: "webgpu", reason: e instanceof Error ? e.message : String(e) }),
});

/**
 * Activates the requested backend and returns the name of the one in use. `blasLibrary`: the OpenBLAS file
 * cpu-blas loads (a worker thread's own copy, src/cli/workers.ts), instead of the first one installed.
 */
export const useBackend = (
  name: BackendName = "auto",
  opts: { readonly blasLibrary?: string } = {},
): Effect.Effect<string, BackendUnavailable> => {
  // Production mode: no debug-mode checks, and no "install tfjs-node" banner on the cpu backend (the
  // choice of backend is ours and is reported on its own line).
  tf.enableProdMode();
  // Bit-identical to the stock kernel, so every cpu choice gets it (./fast_add.ts).
  installFastAdd();
  // Only "cpu-blas" routes products to BLAS; every other choice computes them as before.
  installMatmul(undefined);
  switch (name) {
    case "tensorflow":
      return loadTensorflow;
    case "cpu-blas":
      return loadCpuBlas(opts.blasLibrary);
    case "cpu":
      return loadCpu;
    case "webgpu":
      return loadWebgpu;
    case "auto":
      return loadTensorflow.pipe(
        Effect.orElse(() => loadCpuBlas(opts.blasLibrary)),
        Effect.orElse(() => loadCpu),
      );
  }
};
