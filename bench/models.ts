/**
 * The reference sizes of `deno task bench` (issue 5), shared by our side and PyTorch's
 * (tools/bench/torch_bench.py gets the same config object). Intermediate sizes are what a Llama uses:
 * about 8/3 of hidden, rounded to a multiple of 8 (688 and 1376).
 */
export interface BenchModelConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly intermediateSize: number;
  /** LM head tied to the token embedding (default false). */
  readonly tied?: boolean;
  /** Biases on q/k/v_proj, as Qwen2 has (default false). */
  readonly qkvBias?: boolean;
}

export interface BenchModel {
  readonly name: string;
  readonly config: BenchModelConfig;
  readonly batch: number;
  readonly seq: number;
  /** Timed training steps (after one warm-up step). */
  readonly trainReps: number;
  /** Measured without --models: the default bench stays under 15 minutes. */
  readonly inDefault: boolean;
}

export const BENCH_MODELS: ReadonlyArray<BenchModel> = [
  {
    name: "tiny",
    config: {
      vocabSize: 512,
      hiddenSize: 256,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 4,
      intermediateSize: 688,
    },
    batch: 8,
    seq: 128,
    trainReps: 5,
    inDefault: true,
  },
  {
    name: "small",
    config: {
      vocabSize: 8192,
      hiddenSize: 512,
      numLayers: 8,
      numHeads: 8,
      numKvHeads: 4,
      intermediateSize: 1376,
    },
    batch: 4,
    seq: 256,
    trainReps: 3,
    inDefault: true,
  },
  // Real vocabularies (issue 11), where the LM head and the loss dominate.
  {
    // The pipelines' default tiny model (pipelines/common.ts, tinyModel) with Qwen2's tokenizer.
    name: "wide",
    config: {
      vocabSize: 151646,
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 176,
    },
    batch: 16,
    seq: 192,
    trainReps: 2,
    inDefault: false,
  },
  {
    // SmolLM2-135M's shape.
    name: "smol",
    config: {
      vocabSize: 49152,
      hiddenSize: 576,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      intermediateSize: 1536,
      tied: true,
    },
    batch: 2,
    seq: 512,
    trainReps: 2,
    inDefault: false,
  },
  {
    // Qwen2.5-0.5B's shape.
    name: "qwen05",
    config: {
      vocabSize: 151936,
      hiddenSize: 896,
      numLayers: 24,
      numHeads: 14,
      numKvHeads: 2,
      intermediateSize: 4864,
      tied: true,
      qkvBias: true,
    },
    batch: 1,
    seq: 512,
    trainReps: 2,
    inDefault: false,
  },
];

/**
 * Floating-point operations of one training step as the products compute them: forward, then backward
 * at twice the forward (input and weight gradients), 2 flops per multiply-add. Counted: every dense layer
 * and the LM head at every token, and attention's two products over the full [seq x seq] square (what the
 * kernels compute; a causal kernel could skip half). Elementwise work (norms, softmax, exp) is not.
 */
export const trainFlops = (m: BenchModelConfig, batch: number, seq: number): number => {
  const d = m.hiddenSize, hd = d / m.numHeads, kv = m.numKvHeads * hd;
  const perTokenLayer = d * d + 2 * d * kv + d * d + 3 * d * m.intermediateSize;
  const perToken = m.numLayers * perTokenLayer + m.vocabSize * d;
  const attention = m.numLayers * batch * 2 * seq * seq * d;
  return 3 * 2 * (batch * seq * perToken + attention);
};

/** The square single-precision product that measures the machine's sgemm peak (same run, same backend). */
export const SGEMM = { size: 1024, reps: 5 } as const;

/** Greedy generation with the KV cache: random prompts of `prompt` tokens, `newTokens` new ones. */
export const GENERATE = { batches: [1, 8], prompt: 16, newTokens: 128, reps: 3 } as const;

/** GSM8K train with the GPT-2 tokenizer (../shared, beside the repository; skipped when absent). */
export const PREPROCESS = {
  data: new URL("../../shared/data/gsm8k/train.jsonl", import.meta.url).pathname,
  tokenizer: new URL("../../shared/data/tokenizers/gpt2/tokenizer.json", import.meta.url).pathname,
  reps: 3,
} as const;
