/** A tiny model configuration for the model_* and train_* tests. */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { decodeModelConfig, type ModelConfig } from "../src/model/config.ts";

export const tinyConfig = (overrides: Partial<ModelConfig> = {}): ModelConfig =>
  Effect.runSync(decodeModelConfig({
    architecture: "llama",
    vocabSize: 32,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 24,
    maxPositions: 64,
    tieEmbeddings: false,
    ...overrides,
  }, "test"));

/**
 * Registers "cpu-ref": the cpu backend's kernels under another name. src/model/ops.ts uses its
 * stock-tfjs formulations on any backend not named "cpu", so this runs the path a GPU backend would take.
 */
export const registerReferenceBackend = async (): Promise<void> => {
  await tf.setBackend("cpu");
  if (tf.findBackend("cpu-ref") !== null) return;
  const Cpu = tf.findBackend("cpu")!.constructor as new () => tf.KernelBackend;
  tf.registerBackend("cpu-ref", () => new Cpu());
  for (const k of tf.getKernelsForBackend("cpu")) tf.registerKernel({ ...k, backendName: "cpu-ref" });
};

/** The tiny Hugging Face checkpoints with PyTorch goldens (fixtures/goldens/<name>/golden.json). */
export const goldensRoot = new URL("../fixtures/goldens/", import.meta.url).pathname;
export const GOLDEN_NAMES = ["gpt2", "llama", "llama_gqa", "mistral", "qwen2", "qwen3"];

export interface Golden {
  readonly architecture: string;
  readonly cases: ReadonlyArray<{
    readonly ids: number[];
    readonly logits: number[][];
    readonly logprobs: Array<number | null>;
    readonly greedy: number[];
  }>;
}

export const golden = (name: string): Golden =>
  JSON.parse(Deno.readTextFileSync(`${goldensRoot}${name}/golden.json`));

/** max |a[i] - b[i]|; the lengths must agree. */
export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
