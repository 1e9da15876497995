/**
 * Pretraining the base model: a corpus, a tokenizer learned on it, the documents packed into blocks with
 * the loss on every token, and the same train step that fine-tunes.
 *
 *   generate corpus ─ train tokenizer ─ tokenise ─ pack (train / held-out) ─ train ─ train more ─ BF16
 *                                                                        held-out loss, loss chart, accuracy
 *
 * The corpus (src/data/corpus.ts) is arithmetic and multi-step word problems in many surface forms, never
 * in the fine-tuning formats; `--data` replaces it with a corpus of your own (JSONL `{"text"}` rows or .txt
 * files; `--format` is then ignored) and `--tokenizer` replaces the learned tokenizer. The shipped base
 * (fixtures/base/) is the `base-bf16` node's model of `deno task pipeline pretrain`.
 *
 * Besides the held-out perplexity, the pipeline measures the base's accuracy on the fine-tuning fixtures'
 * test sets before any fine-tuning: it has never seen their format, so it should be near zero.
 */
import { type NodeRef, PipelineBuilder } from "../src/engine/pipeline.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { buildMasksStep } from "../src/steps/build_masks.ts";
import { convertCheckpointStep } from "../src/steps/convert_checkpoint.ts";
import { evaluateStep } from "../src/steps/evaluate.ts";
import { generateCorpusStep } from "../src/steps/generate_corpus.ts";
import { heldoutLossStep } from "../src/steps/heldout_loss.ts";
import { locateKeyStep } from "../src/steps/locate_key.ts";
import { lossChartStep } from "../src/steps/loss_chart.ts";
import { packBlocksStep } from "../src/steps/pack_blocks.ts";
import { takeRowsStep } from "../src/steps/take_rows.ts";
import { tokeniseStep } from "../src/steps/tokenise.ts";
import { tokeniseCorpusStep } from "../src/steps/tokenise_corpus.ts";
import { type TrainConfig, trainStep } from "../src/steps/train.ts";
import { trainTokenizerStep } from "../src/steps/train_tokenizer.ts";
import { type PipelineOptions, TEMPLATE, tokenizerVocabSize } from "./data.ts";
import { TOKENIZER_COMPANIONS } from "../src/data/tokenizer.ts";
import { type DatasetSpec, FINE_TUNE_DATASETS } from "./compare.ts";

/** Everything that sizes a pretraining run; `full` makes the shipped base, `quick` a smoke run in seconds. */
export interface PretrainPlan {
  readonly documents: number;
  readonly vocabSize: number;
  /** Learn tokenizer merges on every stride-th document. */
  readonly tokenizerStride: number;
  readonly blockLength: number;
  readonly heldOutEvery: number;
  readonly model: Omit<ModelConfig, "vocabSize">;
  readonly train: Omit<TrainConfig, "seed" | "model">;
  /**
   * A second leg that continues from the first with a fresh warm-up and cosine, on another data order
   * (seed + 1): the base was first shipped after one leg and then trained further, and splitting the run
   * keeps the first leg's artifact (and its 38 minutes) reusable.
   */
  readonly more?: Omit<TrainConfig, "seed" | "model">;
  /** Test rows of each fine-tuning fixture the base is evaluated on (undefined: all). */
  readonly testRows?: number;
  /**
   * --max-length of those evaluations when the fixtures' own (FINE_TUNE_DATASETS, sized for the shipped
   * base's tokenizer) would cut examples off with the plan's tokenizer.
   */
  readonly testMaxLength?: number;
}

export const FULL_PLAN: PretrainPlan = {
  // About 7 million tokens; 60% of the documents are the fine-tuning tasks' word problems as prose.
  documents: 30000,
  vocabSize: 1024,
  tokenizerStride: 10,
  // Fine-tuning sequences with long chains of thought are a few hundred tokens; RoPE positions beyond the
  // trained block length are untrained, so blocks are long rather than many.
  blockLength: 384,
  // 1% of the documents.
  heldOutEvery: 100,
  // Hidden size 128 rather than 256: at 256 a fine-tuning step cost twice as much and the base needed about
  // 18 passes over a task set to reach the 30-85% band (README), so the default pipeline could not fit in
  // 10 minutes; the smaller model sees more tokens in the pretraining hour.
  model: {
    architecture: "llama",
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 4,
    intermediateSize: 344,
    maxPositions: 512,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    tieEmbeddings: false,
  },
  // 1200 steps of 16 blocks: 7.4 million tokens, about one epoch.
  train: {
    steps: 1200,
    batchSize: 16,
    microBatchSize: 16,
    lr: 3e-3,
    warmupSteps: 36,
    minLrRatio: 0.1,
    weightDecay: 0.1,
    clipNorm: 1.0,
    checkpointEvery: 50,
  },
};

export const QUICK_PLAN: PretrainPlan = {
  documents: 300,
  vocabSize: 400,
  tokenizerStride: 1,
  blockLength: 64,
  heldOutEvery: 10,
  model: {
    architecture: "llama",
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 2,
    intermediateSize: 64,
    maxPositions: 512,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    tieEmbeddings: false,
  },
  train: {
    steps: 30,
    batchSize: 8,
    microBatchSize: 8,
    lr: 3e-3,
    warmupSteps: 3,
    minLrRatio: 0.1,
    weightDecay: 0.1,
    clipNorm: 1.0,
    checkpointEvery: 10,
  },
  more: {
    steps: 10,
    batchSize: 8,
    microBatchSize: 8,
    lr: 2e-3,
    warmupSteps: 2,
    minLrRatio: 0.1,
    weightDecay: 0.1,
    clipNorm: 1.0,
    checkpointEvery: 10,
  },
  testRows: 4,
  // 400 ids learned on 300 documents: the word problems take about twice the full tokenizer's tokens.
  testMaxLength: 448,
};

/** The accuracy of `model` on a fine-tuning fixture's test set, before any fine-tuning. */
const accuracyOn = (
  p: PipelineBuilder,
  { name, test, format }: DatasetSpec,
  model: NodeRef,
  tokenizer: NodeRef,
  rows: number | undefined,
  maxLength: number,
) => {
  const data = p.source(`${name}-test-data`, test);
  const examples = p.add(`${name}-test-keys`, locateKeyStep, { format, onMissingKey: "fail" }, { data });
  let tokens = p.add(`${name}-test-tokens`, tokeniseStep, {
    template: TEMPLATE,
    maxLength,
    onTruncatedKey: "fail",
  }, { examples, tokenizer });
  if (rows !== undefined) {
    tokens = p.add(`${name}-test-first${rows}`, takeRowsStep, { n: rows, file: "tokens.jsonl" }, {
      from: tokens,
    });
  }
  const testSet = p.add(`${name}-test-set`, buildMasksStep, { mask: { kind: "key" } }, { tokens });
  return p.add(`eval-base-${name}`, evaluateStep, { format, maxNewTokens: 64, batchSize: 50 }, {
    model,
    data: testSet,
    tokenizer,
  });
};

export const build = (opts: PipelineOptions = {}) => {
  const plan = opts.quick ? QUICK_PLAN : FULL_PLAN;
  const seed = opts.seed ?? 0;
  const p = new PipelineBuilder("pretrain", "pretrain a base model on a synthetic arithmetic corpus");

  // The generated corpus never contains a question of the fine-tuning tasks (training or test).
  const generated = () => {
    const [exclude, excludeAlso] = FINE_TUNE_DATASETS.map((d) =>
      p.source(d.name, d.train.slice(0, d.train.lastIndexOf("/")))
    );
    return p.add("corpus", generateCorpusStep, { seed, documents: plan.documents }, { exclude, excludeAlso });
  };
  const corpus = opts.train ? p.source("corpus", opts.train) : generated();
  const tokenizer = opts.tokenizer
    ? p.source("tokenizer", opts.tokenizer, { companions: TOKENIZER_COMPANIONS })
    : p.add("tokenizer", trainTokenizerStep, {
      vocabSize: plan.vocabSize,
      minCount: 2,
      stride: plan.tokenizerStride,
      digits: "single",
    }, { corpus });
  const vocabSize = opts.tokenizer ? tokenizerVocabSize(opts.tokenizer) : plan.vocabSize;

  const tokens = p.add("corpus-tokens", tokeniseCorpusStep, {}, { corpus, tokenizer });
  const pack = (split: "train" | "heldout") =>
    p.add(`${split}-blocks`, packBlocksStep, {
      blockLength: plan.blockLength,
      heldOutEvery: plan.heldOutEvery,
      split,
    }, { tokens });
  const trainBlocks = pack("train");
  const heldoutBlocks = pack("heldout");

  // --stage-one-steps / --stage-two-steps set the two legs' lengths, the other budget flags the first leg.
  const { train: trainOverrides, stageOneSteps, stageTwoSteps } = opts.budget ?? {};
  const first = p.add("base", trainStep, {
    ...plan.train,
    ...trainOverrides,
    ...(stageOneSteps !== undefined ? { steps: stageOneSteps } : {}),
    seed,
    model: { ...plan.model, vocabSize },
  }, { data: trainBlocks, tokenizer });
  const last = plan.more
    ? p.add("base-more", trainStep, {
      ...plan.more,
      ...(stageTwoSteps !== undefined ? { steps: stageTwoSteps } : {}),
      seed: seed + 1,
    }, { data: trainBlocks, init: first, tokenizer })
    : first;
  // The shipped checkpoint is BF16; every number below is measured on it.
  const shipped = p.add("base-bf16", convertCheckpointStep, { dtype: "BF16" }, { model: last });
  p.add("heldout", heldoutLossStep, { batchSize: 8 }, { model: shipped, data: heldoutBlocks });
  p.add("loss-chart", lossChartStep, { label: "pretraining", every: opts.quick ? 1 : 5 }, {
    train: last,
    before: plan.more ? first : undefined,
  });
  // The fine-tuning tasks' test sets.
  for (const d of FINE_TUNE_DATASETS) {
    accuracyOn(p, d, shipped, tokenizer, plan.testRows, plan.testMaxLength ?? d.maxLength!);
  }
  return p.build();
};
