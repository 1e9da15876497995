/**
 * RFTT — "Reasoning with Reinforced Functional Token Tuning" (Zhang et al., arXiv 2502.13389; code
 * sastpg/RFTT, built on OpenRLHF), as issue 10 states it.
 *
 * 1. The vocabulary gains 16 functional tokens (`<clarify>`, `<analysis>`, `<subquestion>`, `<next_step>`,
 *    `<direct_answer>`, `<verify>`, `<refine>`, `<output>` and their closing tags) as special tokens; a
 *    starting checkpoint grows its embedding and LM head (new rows: the mean of the old ones).
 * 2. Warm-up data by tree search: MCTS over functional-token steps per training problem (the programmatic
 *    expander of the arithmetic task); the data are the correct paths and the branch merges (a wrong step,
 *    `<verify>`, `<refine>`, the correct continuation).
 * 3. SFT on those traces' response tokens: the train step (`rftt-sft`).
 * 4. Online RL from the warm-up model (`rftt`): functional-token MCTS rollouts, outcome reward,
 *    REINFORCE++ with the KL to the warm-up model, PPO-clip. Variants: the exact process reward
 *    (`rftt-prm`), plain sampling at temperature 1 (`rftt-sampling`), and the same RL budget on a plain
 *    chain-of-thought SFT model without functional tokens (`cot-rl`, sampling: it has no functional
 *    tokens to search over), which tests the paper's central claim.
 * 5. Evaluate: greedy generation; an RFTT model's answer is its `<output>` segment. Test-time scaling:
 *    functional-token tree search at inference (`eval --rollouts N`), majority votes over the first 1, 2, 4,
 *    8 rollouts of each test problem's tree, for rftt-sft and rftt (scaling.svg).
 *
 * Differences, and why: the warm-up SFT is the project's ordinary train step for SFTKey's stage-one
 * budget, from scratch when no --model is given (the vocabulary is then grown before the model exists,
 * so the fresh embedding simply has 16 more rows); the RL learning rate is the stage-two one (1e-4 in both
 * regimes, not swept); the warm-up search uses the programmatic expander only (the arithmetic task's prompts), which
 * the issue allows for the synthetic tasks. At inference the tree has no reward to back up (no gold
 * answer), so its rollouts spread over the policy's most probable branches (src/train/rftt_test_search.ts).
 */
import { type NodeRef, type Pipeline, PipelineBuilder } from "../src/engine/pipeline.ts";
import { ADD_FUNCTIONAL_TOKENS, addTokensStep } from "../src/steps/add_tokens.ts";
import { buildMasksStep } from "../src/steps/build_masks.ts";
import { addRlCharts } from "../src/steps/rl_charts.ts";
import { addScalingChart } from "../src/steps/scaling_chart.ts";
import { evaluateStep } from "../src/steps/evaluate.ts";
import { RL_DEFAULT_LOCATOR, RL_STEP_DEFAULTS, type RlConfig, rlStep } from "../src/steps/rl.ts";
import { takeRowsStep } from "../src/steps/take_rows.ts";
import { tokeniseStep } from "../src/steps/tokenise.ts";
import { trainStep } from "../src/steps/train.ts";
import { TREE_SEARCH_DEFAULTS, treeSearchStep } from "../src/steps/tree_search.ts";
import { FUNCTIONAL_TOKENS } from "../src/data/functional_tokens.ts";
import { defaultLocator } from "../src/data/formats.ts";
import type { LocatorSpec } from "../src/data/locate.ts";
import { type PipelineOptions, prepareData, TEMPLATE, tinyModel, tokenizerVocabSize } from "./data.ts";
import {
  answerJudging,
  type Method,
  type MethodContext,
  methodContext,
  once,
  type OwnEvaluation,
  responseStage,
  runMethods,
} from "./method_context.ts";

/** Longest warm-up trace (prompt + trace + EOS) in tokens; longer ones are dropped (none on the fixtures). */
export const RFTT_MAX_LENGTH = 192;
/** Tokens an RFTT model may generate in evaluation (the longest warm-up trace is 158). */
export const RFTT_EVAL_TOKENS = 176;
/** Positions of a from-scratch RFTT model: a prompt and the longest trace or rollout. */
export const RFTT_POSITIONS = 256;

/** Where an RFTT model's answer is: the content of its `<output>` segment. */
export const OUTPUT_LOCATOR = { kind: "answer-tags", open: "<output>\n", close: "\n</output>" } as const;

/** RL's budget: updates x prompts x rollouts, and the rollouts' lengths. */
export interface RlBudget {
  readonly updates: number;
  readonly promptsPerUpdate: number;
  readonly rolloutsPerPrompt: number;
  readonly maxStepTokens: number;
  readonly maxDepth: number;
  readonly checkpointEvery: number;
}

/**
 * The RL budget every RL arm shares: one update (4 prompts x 4 rollouts) per 20 optimizer steps of the
 * warm-up SFT, so 20 updates in this pipeline (400 steps), 10 in the comparison's halved budget. The
 * full `rftt` pipeline (four RL runs) then stays within the 30 minutes on two cores; --quick
 * proves the wiring.
 */
export const rlBudget = (ctx: MethodContext): RlBudget => ({
  updates: ctx.data.options.quick ? 2 : Math.max(2, Math.round(ctx.budget.stageOneSteps / 20)),
  promptsPerUpdate: ctx.data.options.quick ? 2 : 4,
  rolloutsPerPrompt: ctx.data.options.quick ? 2 : 4,
  maxStepTokens: 36,
  maxDepth: 6,
  checkpointEvery: ctx.data.options.quick ? 1 : 5,
});

/**
 * RL's learning rate: stage two's (1e-4 in both regimes). Not swept: at three times that, every RL arm of
 * the from-scratch pipeline lost accuracy (cot-rl 93.0% -> 84.5%, rftt 12.5% -> 10.0%; seed 0, README).
 */
export const rlLr = (ctx: MethodContext): number => ctx.budget.stageTwoLr;

/** The warm-up: grown tokenizer (and checkpoint), tree-search traces, SFT. One set of nodes per prefix. */
interface WarmUp {
  readonly tokenizer: NodeRef;
  readonly sft: NodeRef;
}

/** Phase 1 (shared by every RFTT arm of a method context): functional tokens, search, SFT. */
export const warmUp = (ctx: MethodContext): WarmUp =>
  once(ctx, "rftt-sft", () => {
    const { data, budget: b } = ctx;
    // The vocabulary gains the functional tokens; a starting checkpoint grows its embedding and LM head.
    const grown = ctx.p.add(ctx.name("rftt-add-tokens"), addTokensStep, ADD_FUNCTIONAL_TOKENS, {
      model: data.base,
      tokenizer: data.tokenizer,
    });
    // Warm-up data: MCTS over functional-token steps for every training problem.
    const traces = ctx.p.add(ctx.name("rftt-search"), treeSearchStep, {
      ...TREE_SEARCH_DEFAULTS,
      format: data.options.format,
      seed: ctx.seed,
    }, { data: data.trainExamples });
    const tokens = ctx.p.add(ctx.name("rftt-trace-tokens"), tokeniseStep, {
      template: TEMPLATE,
      maxLength: RFTT_MAX_LENGTH,
      onTruncatedKey: "drop",
    }, { examples: traces, tokenizer: grown });
    const masked = ctx.p.add(ctx.name("rftt-mask-response"), buildMasksStep, { mask: { kind: "response" } }, {
      tokens,
    });
    // SFT on the traces' response tokens, for the stage-one budget (as the chain-of-thought baseline).
    const sft = ctx.p.add(ctx.name("rftt-sft"), trainStep, {
      ...b.train,
      steps: b.stageOneSteps,
      seed: ctx.seed,
      model: data.base
        ? undefined
        : tinyModel(tokenizerVocabSize(data.options.tokenizer) + FUNCTIONAL_TOKENS.length, RFTT_POSITIONS),
    }, { data: masked, init: data.base ? grown : undefined, tokenizer: grown });
    return { tokenizer: grown, sft };
  });

/** Phase 2's settings for an arm. */
const rlConfig = (
  ctx: MethodContext,
  arm: Pick<RlConfig, "rollout" | "traces" | "reward">,
): RlConfig => {
  const r = rlBudget(ctx);
  return {
    ...RL_STEP_DEFAULTS,
    ...arm,
    updates: r.updates,
    promptsPerUpdate: r.promptsPerUpdate,
    rolloutsPerPrompt: r.rolloutsPerPrompt,
    template: TEMPLATE,
    maxNewTokens: arm.traces === "functional" ? RFTT_EVAL_TOKENS : ctx.data.options.maxNewTokens,
    maxStepTokens: r.maxStepTokens,
    maxDepth: r.maxDepth,
    lr: rlLr(ctx),
    checkpointEvery: r.checkpointEvery,
    seed: ctx.seed,
    ...(arm.traces === "plain" ? plainLocator(ctx) : {}),
  };
};

/**
 * Where a plain (chain-of-thought) rollout's answer is: the data's locator, as evaluation reads it (the
 * user's --locator, else the format's own: `####` for gsm8k). Without it the rl step reads `<Answer>`
 * tags, which GSM8K-format responses never have: every reward was 0 and cot-rl never moved (found in the
 * comparison of 2026-12-03). The step's own default is left implicit, so tag-format runs keep their keys.
 */
const plainLocator = (ctx: MethodContext): { locator?: LocatorSpec } => {
  const locator = ctx.data.options.locator ?? defaultLocator[ctx.data.options.format];
  return JSON.stringify(locator) === JSON.stringify(RL_DEFAULT_LOCATOR) ? {} : { locator };
};

/** An RFTT model with its evaluation: the grown tokenizer, the answer in `<output>`, room for a trace. */
const judged = (model: NodeRef, tokenizer: NodeRef): OwnEvaluation => ({
  model,
  tokenizer,
  judging: { locator: OUTPUT_LOCATOR, maxNewTokens: RFTT_EVAL_TOKENS },
});

/** Phase 2 for one RFTT arm: RL from the warm-up model. */
const rfttArm = (label: string, arm: Pick<RlConfig, "rollout" | "reward">): Method => (ctx) => {
  const warm = warmUp(ctx);
  const rl = ctx.p.add(ctx.name(label), rlStep, rlConfig(ctx, { ...arm, traces: "functional" }), {
    model: warm.sft,
    data: ctx.data.trainExamples,
    tokenizer: warm.tokenizer,
  });
  return { [label]: judged(rl, warm.tokenizer) };
};

/** The chain-of-thought SFT model (SFTKey's stage one, shared through the cache). */
const cotStage = (ctx: MethodContext): NodeRef => once(ctx, "cot-sft", () => responseStage(ctx, "cot-sft"));

/** `rftt-sft`: the warm-up model alone. */
export const rfttSft: Method = (ctx) => {
  const warm = warmUp(ctx);
  return { "rftt-sft": judged(warm.sft, warm.tokenizer) };
};

/** `rftt`: functional-token MCTS rollouts, outcome reward. */
export const rftt: Method = rfttArm("rftt", { rollout: "mcts", reward: "outcome" });

/** `rftt-prm`: MCTS rollouts with the exact process reward (0.6 outcome + 0.4 mean step score). */
export const rfttPrm: Method = rfttArm("rftt-prm", { rollout: "mcts", reward: "process" });

/** `rftt-sampling`: plain sampling at temperature 1, no tree. */
export const rfttSampling: Method = rfttArm("rftt-sampling", { rollout: "sampling", reward: "outcome" });

/**
 * `cot-rl`: the same RL budget (sampled rollouts: without functional tokens there is nothing to search
 * over) from a plain chain-of-thought SFT model (SFTKey's stage one, shared through the cache).
 */
export const cotRl: Method = (ctx) => {
  const cot = cotStage(ctx);
  return {
    "cot-rl": ctx.p.add(
      ctx.name("cot-rl"),
      rlStep,
      rlConfig(ctx, { rollout: "sampling", traces: "plain", reward: "outcome" }),
      { model: cot, data: ctx.data.trainExamples, tokenizer: ctx.data.tokenizer },
    ),
  };
};

/** The chain-of-thought SFT model `cot-rl` starts from, evaluated as the baseline. */
export const cotSft: Method = (ctx) => ({ "cot-sft": cotStage(ctx) });

/** Every RFTT arm, by label, in the order the pipeline evaluates them. */
export const RFTT_ARMS: Readonly<Record<string, Method>> = {
  "rftt-sft": rfttSft,
  rftt,
  "rftt-prm": rfttPrm,
  "rftt-sampling": rfttSampling,
  "cot-sft": cotSft,
  "cot-rl": cotRl,
};

/**
 * Test-time scaling: functional-token MCTS at inference with this many rollouts per test problem; the
 * majority `<output>` answer of the first 1, 2, 4, 8 of them (src/train/rftt_test_search.ts).
 */
export const VOTE_ROLLOUTS = 8;
/** With --quick, the votes are on this many test problems. */
export const QUICK_VOTE_PROBLEMS = 20;

/**
 * The test-time search's evaluation of an RFTT model (node `vote-<label>` in `ctx`): VOTE_ROLLOUTS
 * functional-token MCTS rollouts per problem of `testSet`, the majority `<output>` answer.
 */
export const searchVote = (
  ctx: MethodContext,
  label: string,
  model: NodeRef,
  tokenizer: NodeRef,
  testSet: NodeRef,
): NodeRef =>
  ctx.p.add(ctx.name(`vote-${label}`), evaluateStep, {
    ...answerJudging(ctx),
    ...judged(model, tokenizer).judging,
    batchSize: 64,
    rollouts: VOTE_ROLLOUTS,
    seed: ctx.seed,
  }, { model, data: testSet, tokenizer });

/** The arms that run RL (their nodes are named by their labels). */
export const RL_ARMS = ["rftt", "rftt-prm", "rftt-sampling", "cot-rl"] as const;

/** The RFTT pipeline: warm-up data by search, SFT, RL (four arms), evaluate; with the CoT baselines. */
export const build = (opts: PipelineOptions = {}): Pipeline => {
  const p = new PipelineBuilder(
    "rftt",
    "RFTT (functional tokens: tree-search warm-up SFT, then RL) vs chain-of-thought SFT and RL",
  );
  const data = prepareData(p, opts);
  runMethods(p, data, Object.values(RFTT_ARMS));
  // Test-time scaling: tree search at inference, majority votes over its first 1, 2, 4, 8 rollouts.
  const ctx = methodContext(p, data);
  const warm = warmUp(ctx);
  // --quick votes on the first test problems only: the trees of an untrained model run to their limits.
  const voteSet = data.options.quick
    ? p.add(`test-first${QUICK_VOTE_PROBLEMS}`, takeRowsStep, {
      n: QUICK_VOTE_PROBLEMS,
      file: "masked.jsonl",
    }, {
      from: data.testSet,
    })
    : data.testSet;
  addScalingChart(
    p,
    "scaling-chart",
    Object.fromEntries(
      (["rftt-sft", "rftt"] as const).map((label) => [
        label,
        searchVote(ctx, label, label === "rftt-sft" ? warm.sft : { node: "rftt" }, warm.tokenizer, voteSet),
      ]),
    ),
  );
  // The RL runs' per-update logs as charts (rl_curves.svg in the run directory).
  addRlCharts(p, "rl-charts", Object.fromEntries(RL_ARMS.map((arm) => [arm, { node: arm }])));
  const r = rlBudget(ctx);
  p.setting(
    "rl",
    `${r.updates} updates x ${r.promptsPerUpdate} prompts x ${r.rolloutsPerPrompt} rollouts (lr ${
      rlLr(methodContext(p, data))
    })`,
  );
  return p.build();
};
