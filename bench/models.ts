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
}

export interface BenchModel {
  readonly name: string;
  readonly config: BenchModelConfig;
  readonly batch: number;
  readonly seq: number;
  /** Timed training steps (after one warm-up step). */
  readonly trainReps: number;
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
  },
];

/** Greedy generation with the KV cache: random prompts of `prompt` tokens, `newTokens` new ones. */
export const GENERATE = { batches: [1, 8], prompt: 16, newTokens: 128, reps: 3 } as const;

/** GSM8K train with the GPT-2 tokenizer (../shared, beside the repository; skipped when absent). */
export const PREPROCESS = {
  data: new URL("../../shared/data/gsm8k/train.jsonl", import.meta.url).pathname,
  tokenizer: new URL("../../shared/data/tokenizers/gpt2/tokenizer.json", import.meta.url).pathname,
  reps: 3,
} as const;
