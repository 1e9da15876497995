/**
 * SFTKey — "Rethinking Supervised Fine-Tuning: Emphasizing Key Answer Tokens for Improved LLM Accuracy"
 * (Shi, Kou, Li, Zhou; arXiv 2512.21017).
 *
 * Stage one is ordinary SFT on the whole response, chain of thought and answer, so the model learns the
 * output format. Stage two continues from stage one with the loss on the key part only: the tokens after
 * the thinking part (`<Answer>...</Answer>` and EOS in the tag format, the `#### ` line in GSM8K).
 * Both stages are evaluated.
 *
 * Under --lora each stage trains an adapter. Stage two continues stage one's adapter by default
 * (`--lora-stage-two continue`: the original base with stage one's adapter as the start, so both stages'
 * adapters are on the original base, and stage two's is the whole fine-tune as one adapter); with
 * `--lora-stage-two new` it trains a new adapter on stage one's merged model. trainOn
 * (method_context.ts) wires either for every method's second stage.
 */
import { type NodeRef, type Pipeline, PipelineBuilder } from "../src/engine/pipeline.ts";
import { fixture, type PipelineOptions, prepareData } from "./data.ts";
import { type Method, runMethods, train } from "./method_context.ts";
import { sft } from "./sft.ts";

/** SFTKey: stage one on the whole response, stage two from it on the answer part only. */
export const sftkey: Method = (ctx): Readonly<Record<string, NodeRef>> => {
  const b = ctx.budget;
  // Stage one: every response token (thinking and answer) carries weight 1.
  const stageOne = train(ctx, "sftkey-stage-one", { kind: "response" }, ctx.data.base, {
    ...b.train,
    steps: b.stageOneSteps,
  });
  // Stage two: from stage one, loss on the answer part only (under --lora: stage one's adapter continued,
  // or a new one on its merged model; see the file comment).
  const stageTwo = train(ctx, "sftkey-stage-two", { kind: "answer" }, stageOne, {
    ...b.train,
    steps: b.stageTwoSteps,
    lr: b.stageTwoLr,
    warmupSteps: b.stageTwoWarmupSteps,
  });
  return { "sftkey-stage-one": stageOne, "sftkey-stage-two": stageTwo };
};

/**
 * The shipped base (fixtures/base) and the task it is fine-tuned on by default: the tag-format word
 * problems (fixtures/word-tags). The generation and length budgets cover that set with the base's
 * tokenizer: its longest training example is 176 tokens and its longest test response 110 (tools/
 * word_stats.ts); the base's RoPE has no learned positions, so 192 + 128 costs nothing in weights.
 */
export const SHIPPED_BASE = {
  model: fixture("base"),
  tokenizer: fixture("base/tokenizer.json"),
  train: fixture("word-tags/train.jsonl"),
  test: fixture("word-tags/test.jsonl"),
  maxLength: 192,
  maxNewTokens: 128,
} as const;

/** The slice --quick fine-tunes on and evaluates. */
export const QUICK_LIMIT = { train: 64, test: 10 } as const;

/**
 * The options of the default pipeline: fine-tune `--model`, else the shipped base, on `--data`, else the
 * word problems. A user's model brings its tokenizer (the command line fills it in); the word problems'
 * length budgets apply only when they are the data.
 */
export const fineTuneOptions = (opts: PipelineOptions): PipelineOptions => {
  const ownData = opts.train !== undefined;
  return {
    ...opts,
    model: opts.model ?? SHIPPED_BASE.model,
    tokenizer: opts.tokenizer ?? (opts.model ? undefined : SHIPPED_BASE.tokenizer),
    train: opts.train ?? SHIPPED_BASE.train,
    test: opts.test ?? (ownData ? undefined : SHIPPED_BASE.test),
    maxLength: opts.maxLength ?? (ownData ? undefined : SHIPPED_BASE.maxLength),
    maxNewTokens: opts.maxNewTokens ?? (ownData ? undefined : SHIPPED_BASE.maxNewTokens),
    // --quick proves the wiring: generating 128 tokens for 500 test prompts would take minutes.
    limit: opts.limit ?? (opts.quick ? QUICK_LIMIT : undefined),
  };
};

/**
 * `deno task pipeline` (DEFAULT_PIPELINE) and `deno task pipeline sftkey-finetune`: SFTKey and SFT fine-tuning
 * a checkpoint, the shipped base unless `--model` names another (fineTuneOptions).
 */
export const buildFineTune = (opts: PipelineOptions = {}): Pipeline =>
  build(fineTuneOptions(opts), "sftkey-finetune");

/**
 * SFTKey and, for comparison, plain SFT with the same number of optimizer steps, on exactly the given
 * options: from scratch on the embedded arithmetic fixture when none are given (`deno task pipeline sftkey`).
 */
export const build = (opts: PipelineOptions = {}, name = "sftkey"): Pipeline => {
  const p = new PipelineBuilder(
    name,
    "SFTKey (stage one: whole response; stage two: answer only) vs SFT",
  );
  runMethods(p, prepareData(p, opts), [sftkey, sft]);
  return p.build();
};
