/**
 * One measurement of `deno task bench`, run in a child process (see bench/main.ts): a training run, a
 * generation run or the preprocessing pass, each timed through the project's own code.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { parseExamples } from "../src/data/formats.ts";
import { answerPartStart, locateKey } from "../src/data/locate.ts";
import { buildMask } from "../src/data/masks.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { decodeModelConfig, type ModelConfig } from "../src/model/config.ts";
import { generate } from "../src/model/generate.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { Rng } from "../src/util/rng.ts";
import { optimizerStep } from "../src/train/step.ts";
import { type BenchModelConfig, PREPROCESS } from "./models.ts";

export type BenchItem =
  | {
    readonly task: "train";
    readonly backend: string;
    readonly model: BenchModelConfig;
    readonly batch: number;
    readonly seq: number;
    readonly reps: number;
  }
  | {
    readonly task: "generate";
    readonly backend: string;
    readonly model: BenchModelConfig;
    readonly batch: number;
    readonly prompt: number;
    readonly newTokens: number;
    readonly reps: number;
  }
  | { readonly task: "preprocess"; readonly backend: string; readonly reps: number };

export interface ItemResult {
  /** Throughput of each timed repetition: tokens/s (train), new tokens/s (generate), examples/s. */
  readonly samples: number[];
  readonly peakRssMb: number;
  readonly backend: string;
}

/** The process's peak resident set (VmHWM), in MiB; the current one where /proc is not readable. */
export const peakRssMb = (): number => {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    if (m) return Number(m[1]) / 1024;
  } catch { /* not Linux, or no read permission */ }
  return Deno.memoryUsage().rss / 2 ** 20;
};

/** A Llama with untied LM head, like the PyTorch reference. */
const toConfig = (m: BenchModelConfig): ModelConfig =>
  Effect.runSync(decodeModelConfig({
    architecture: "llama",
    ...m,
    maxPositions: 4096,
    tieEmbeddings: false,
  }, "bench model"));

const seconds = (f: () => void): number => {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
};

const train = (item: Extract<BenchItem, { task: "train" }>): number[] => {
  const c = toConfig(item.model), rng = Rng.seeded(1), n = item.batch * item.seq;
  const params = initParams(c, rng);
  const opt = new AdamW(params, { weightDecay: 0.01 });
  // Every next-token prediction counts, as in the PyTorch reference's plain causal-LM loss.
  const mb = {
    ids: Int32Array.from({ length: n }, () => rng.int(c.vocabSize)),
    weights: new Float32Array(n).fill(1),
    batch: item.batch,
    seqLen: item.seq,
  };
  const step = () => optimizerStep(params, c, opt, [mb], { lr: 1e-3, clipNorm: 1 });
  step(); // warm-up: JIT, first allocations
  const samples = Array.from({ length: item.reps }, () => n / seconds(step));
  disposeParams(params);
  return samples;
};

const gen = (item: Extract<BenchItem, { task: "generate" }>): number[] => {
  const c = toConfig(item.model), rng = Rng.seeded(2);
  const params = initParams(c, rng);
  const prompts = Array.from(
    { length: item.batch },
    () => Array.from({ length: item.prompt }, () => rng.int(c.vocabSize)),
  );
  generate(params, c, prompts.map((p) => p.slice(0, 4)), { maxNewTokens: 8 }); // warm-up
  const samples = Array.from({ length: item.reps }, () => {
    let made = 0;
    const s = seconds(() => {
      made = generate(params, c, prompts, { maxNewTokens: item.newTokens }).reduce((a, r) => a + r.length, 0);
    });
    return made / s;
  });
  disposeParams(params);
  return samples;
};

/** GSM8K train: parse, locate the key, tokenise segment-wise and build the response and key masks. */
const preprocess = async (item: Extract<BenchItem, { task: "preprocess" }>): Promise<number[]> => {
  const tok = await Effect.runPromise(loadTokenizer(PREPROCESS.tokenizer));
  const bytes = Deno.readFileSync(PREPROCESS.data);
  const spec = { kind: "gsm8k" } as const;
  const pass = async () => {
    const t0 = performance.now();
    const examples = await Effect.runPromise(parseExamples(PREPROCESS.data, bytes, "gsm8k"));
    for (const ex of examples) {
      const key = locateKey(ex.response, spec, ex.answerField);
      const answerStart = key ? answerPartStart(ex.response, spec, key) : undefined;
      const t = tokeniseExample(tok, ex, key, { template: "{prompt}\n", maxLength: 512, answerStart });
      buildMask({ kind: "response" }, t);
      buildMask({ kind: "key" }, t);
    }
    return examples.length / ((performance.now() - t0) / 1000);
  };
  await pass(); // warm-up: JIT, the tokenizer's caches
  const samples: number[] = [];
  for (let i = 0; i < item.reps; i++) samples.push(await pass());
  return samples;
};

export const runItem = async (item: BenchItem, backend: string): Promise<ItemResult> => {
  const samples = item.task === "train"
    ? train(item)
    : item.task === "generate"
    ? gen(item)
    : await preprocess(item);
  if (tf.memory().numTensors > 1000) throw new Error(`${tf.memory().numTensors} tensors left: a leak`);
  return { samples, peakRssMb: peakRssMb(), backend };
};
