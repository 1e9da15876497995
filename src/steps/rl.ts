/**
 * Step `rl`: RFTT's second phase (arXiv 2502.13389; issue 10), online reinforcement learning from the
 * warm-up model. Per update: `promptsPerUpdate` problems, `rolloutsPerPrompt` rollouts each
 * (../train/rl_rollouts.ts: functional-token MCTS, or plain sampling at temperature 1), their rewards
 * (outcome 1/0 on the last token, optionally the exact process reward of the arithmetic task), then the
 * update (../train/rl_update.ts): KL to the frozen reference (the `model` input, beta 0.01), REINFORCE++
 * (advantages normalised over the batch) or GRPO (within each prompt's group), PPO-clip with eps 0.2, no
 * critic, AdamW at a constant learning rate.
 *
 * Resumable like `train` (the same checkpoint helpers, ../train/run_checkpoint.ts): every `checkpointEvery`
 * updates the policy, the AdamW moments and the state (updates done, the log so far, the kept rollouts)
 * are written atomically and sealed. The rollout cursor is the update count: update u's problems are
 * `batchIndices(n, promptsPerUpdate, u, seed)` and its random stream is seeded by (seed, u), so the state
 * fixes both the next prompts and the RNG; a killed run rerun ends with the weights of an uninterrupted one.
 *
 * Inputs: `model` (the warm-up checkpoint: the starting policy and the reference), `data` (located.jsonl:
 * prompts and gold answers, from locateKey or treeSearch), `tokenizer`. Output: model/ (a Hugging Face
 * checkpoint), rl_log.jsonl (per update: mean reward, outcome accuracy, KL to the reference, response
 * length, clip fraction, share of rollouts reaching `<output>`, functional-token counts per rollout, loss,
 * gradient norm), rollouts.jsonl (the first rollouts of every update, as text), rl_summary.json and
 * rl.meta.json (wall time, backend: run facts, out of the content digest).
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import {
  EmptyDataset,
  InvalidConfig,
  InvalidRow,
  NonFiniteLoss,
  TokenizerMismatch,
  type ToolkitError,
} from "../errors.ts";
import { LocatorSpec } from "../data/locate.ts";
import { type LocatedRecord, readJsonl, writeJsonl } from "../data/records.ts";
import { renderPrompt } from "../data/tokenise.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { removeIfExists, writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { contextLength } from "../model/config.ts";
import { disposeParams } from "../model/model.ts";
import { AdamW } from "../train/adamw.ts";
import { batchIndices } from "../train/batches.ts";
import { parseArithPrompt } from "../train/rftt_arith.ts";
import { modelPolicy } from "../train/rftt_model_expander.ts";
import {
  collectRollouts,
  functionalIds,
  logRow,
  type RlLogRow,
  type RlProblem,
} from "../train/rl_rollouts.ts";
import { rlUpdate } from "../train/rl_update.ts";
import { checkpointDir, loadRunCheckpoint, saveRunCheckpoint } from "../train/run_checkpoint.ts";
import { Rng } from "../util/rng.ts";
import { modelDirOf, saveTrainedModel } from "./shared.ts";

const PositiveInt = Schema.Int.pipe(Schema.positive());
const Positive = Schema.Number.pipe(Schema.positive(), Schema.finite());
const NonNegative = Schema.Number.pipe(Schema.nonNegative(), Schema.finite());

/** Decoder of the step's config; the fields are documented on the interface `RlConfig`. */
export const RlConfig: Schema.Schema<RlConfig> = Schema.Struct({
  updates: PositiveInt,
  promptsPerUpdate: PositiveInt,
  rolloutsPerPrompt: PositiveInt,
  rollout: Schema.Literal("mcts", "sampling"),
  traces: Schema.Literal("functional", "plain"),
  reward: Schema.Literal("outcome", "process"),
  estimator: Schema.Literal("reinforce++", "grpo"),
  template: Schema.String,
  locator: Schema.optional(LocatorSpec),
  maxNewTokens: PositiveInt,
  temperature: Positive,
  stepTemperature: NonNegative,
  maxStepTokens: PositiveInt,
  maxDepth: PositiveInt,
  exploration: NonNegative,
  maxChildren: PositiveInt,
  lr: Positive,
  weightDecay: NonNegative,
  clipNorm: Positive,
  beta: NonNegative,
  clipEps: Positive,
  minibatches: PositiveInt,
  checkpointEvery: PositiveInt,
  keepRollouts: Schema.Int.pipe(Schema.nonNegative()),
  seed: Schema.Int,
});

/** The `rl` step's config as plain data, spelled out for the API docs. */
export interface RlConfig {
  /** RL updates (each: rollouts, rewards, `minibatches` optimizer steps). */
  readonly updates: number;
  /** Problems per update. */
  readonly promptsPerUpdate: number;
  /** Rollouts per problem: the tree's rollouts ("mcts") or samples ("sampling"); GRPO's group size. */
  readonly rolloutsPerPrompt: number;
  /** "mcts": functional-token tree search; "sampling": whole responses at `temperature`. */
  readonly rollout: "mcts" | "sampling";
  /** "functional": functional-token traces (the answer in `<output>`); "plain": chain of thought. */
  readonly traces: "functional" | "plain";
  /** "outcome": 1/0; "process": 0.6 outcome + 0.4 mean exact step score (arithmetic task). */
  readonly reward: "outcome" | "process";
  /** REINFORCE++ (batch-normalised) or GRPO (group-normalised). */
  readonly estimator: "reinforce++" | "grpo";
  /** The prompt template (`{prompt}` is replaced), as tokenise used it. */
  readonly template: string;
  /** Plain traces: the answer locator (default answer-tags). */
  readonly locator?: LocatorSpec;
  /** Sampling: most tokens of a response. */
  readonly maxNewTokens: number;
  /** Sampling temperature (1 in RFTT). */
  readonly temperature: number;
  /** MCTS: temperature of step contents (low in RFTT). */
  readonly stepTemperature: number;
  /** MCTS: most tokens of one step, its closing token included. */
  readonly maxStepTokens: number;
  /** MCTS: most steps in a path. */
  readonly maxDepth: number;
  /** MCTS: UCT's exploration weight (2). */
  readonly exploration: number;
  /** MCTS: most children per node, the policy's most probable allowed tags (RFTT orders them so). */
  readonly maxChildren: number;
  /** Constant learning rate. */
  readonly lr: number;
  /** AdamW's decoupled weight decay. */
  readonly weightDecay: number;
  /** Global gradient-norm clipping threshold. */
  readonly clipNorm: number;
  /** KL coefficient to the reference (0.01). */
  readonly beta: number;
  /** PPO clip range (0.2). */
  readonly clipEps: number;
  /** Optimizer steps per update, each on a slice of the rollouts. */
  readonly minibatches: number;
  /** Updates between checkpoints. */
  readonly checkpointEvery: number;
  /** Rollouts of each update kept as text in rollouts.jsonl. */
  readonly keepRollouts: number;
  /** Seed of the prompt order and of the rollouts. */
  readonly seed: number;
}

/** Where a plain rollout's answer is when the config names no locator: `<Answer>` tags. */
export const RL_DEFAULT_LOCATOR: LocatorSpec = { kind: "answer-tags" };

/** RFTT's settings, less what a pipeline chooses (updates, rollout mode, traces, reward, template, lengths). */
export const RL_STEP_DEFAULTS = {
  estimator: "reinforce++",
  temperature: 1,
  stepTemperature: 0.3,
  exploration: 2,
  // A cost choice of this project: each expansion writes the 3 most probable allowed tags' steps.
  maxChildren: 3,
  weightDecay: 0,
  clipNorm: 1,
  beta: 0.01,
  clipEps: 0.2,
  minibatches: 2,
  keepRollouts: 2,
} as const;

interface KeptRollout {
  readonly update: number;
  readonly prompt: string;
  readonly response: string;
  readonly reward: number;
}

interface RlState {
  /** Updates done: the rollout cursor. */
  readonly step: number;
  readonly log: RlLogRow[];
  readonly kept: KeptRollout[];
  readonly seconds: number;
}

const parseRlState = (json: unknown): RlState => {
  const { step, log, kept, seconds } = json as RlState;
  if (!Number.isInteger(step) || !Array.isArray(log) || !Array.isArray(kept)) throw new Error("bad rl state");
  return { step, log, kept, seconds };
};

/** The random stream of update `u`: a function of (seed, u) only. */
const updateRng = (seed: number, u: number) =>
  Rng.seeded(((seed >>> 0) ^ Math.imul(u + 1, 0x9e3779b1)) >>> 0);

/** Settings that cannot work together, or a sequence longer than the model computes exactly. */
const configProblem = (config: RlConfig, longestPrompt: number, positions: number): string | undefined => {
  if (config.rollout === "mcts" && config.traces !== "functional") {
    return 'tree-search rollouts need functional traces (traces: "functional")';
  }
  if (config.reward === "process" && config.traces !== "functional") {
    return "the process reward scores functional-token steps";
  }
  // A step is its opening token, newlines, content and closing token: at most maxStepTokens + 3 more.
  const longest = longestPrompt + 1 +
    (config.rollout === "mcts" ? config.maxDepth * (config.maxStepTokens + 3) : config.maxNewTokens);
  if (longest > positions) {
    return `a rollout may reach ${longest} tokens (longest prompt ${longestPrompt}), more than the ${positions} ` +
      "positions the model computes exactly";
  }
  return undefined;
};

/** The `rl` step: online RL (REINFORCE++ or GRPO, PPO-clip, KL to the reference) from a warm-up model. */
export const rlStep: Step<RlConfig, "model" | "data" | "tokenizer", ToolkitError> = defineStep({
  name: "rl",
  version: 1,
  description: "online RL from a warm-up model: MCTS or sampled rollouts, REINFORCE++/GRPO, PPO-clip, KL",
  config: RlConfig,
  inputs: ["model", "data", "tokenizer"] as const,
  resumable: true,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const log = (line: string) => ctx.reporter.log(`[${ctx.node}] ${line}`);
      const tok = yield* loadTokenizer(inputs.tokenizer!);
      if (config.traces === "functional" && functionalIds(tok) === undefined) {
        return yield* new TokenizerMismatch({
          path: tok.path,
          reason: "the functional tokens are not single tokens in it (run the addTokens step first)",
        });
      }
      const records = yield* readJsonl<LocatedRecord>(`${inputs.data}/located.jsonl`);
      if (records.length === 0) {
        return yield* new EmptyDataset({ what: `${inputs.data}/located.jsonl`, reason: "no problems" });
      }
      const problems: RlProblem[] = [];
      for (const r of records) {
        const arith = config.reward === "process" ? parseArithPrompt(r.prompt) : undefined;
        if (config.reward === "process" && arith === undefined) {
          const at = r.source.lastIndexOf(":");
          return yield* new InvalidRow({
            file: r.source.slice(0, at),
            line: Number(r.source.slice(at + 1)),
            field: "prompt",
            reason: 'the process reward checks arithmetic steps: it needs a prompt like "What is 9 - 3 + 2?"',
          });
        }
        problems.push({
          promptIds: tok.encode(renderPrompt(config.template, r.prompt)),
          gold: r.answer,
          ...(arith ? { arith } : {}),
        });
      }

      const initDir = yield* Effect.promise(() => modelDirOf(inputs.model!));
      const reference = yield* loadCheckpoint(initDir);
      yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(reference.params)));
      const longestPrompt = problems.reduce((m, p) => Math.max(m, p.promptIds.length), 0);
      const problem = configProblem(config, longestPrompt, contextLength(reference.config));
      if (problem) return yield* new InvalidConfig({ where: `${ctx.node}.config`, reason: problem });

      const resumed = ctx.resumed
        ? yield* loadRunCheckpoint(ctx.dir, log, loadCheckpoint, parseRlState)
        : undefined;
      const { config: modelConfig, params } = resumed ?? (yield* loadCheckpoint(initDir));
      yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(params)));
      const optimizer = new AdamW(params, { weightDecay: config.weightDecay });
      let state: RlState = { step: 0, log: [], kept: [], seconds: 0 };
      let lastCheckpoint = "(none yet)";
      if (resumed) {
        optimizer.importState(resumed.optimizer);
        state = resumed.state;
        lastCheckpoint = resumed.path;
        log(`resuming at update ${state.step}/${config.updates}`);
      }

      const policy = modelPolicy(params, modelConfig);
      const settings = {
        mode: config.rollout,
        traces: config.traces,
        perPrompt: config.rolloutsPerPrompt,
        maxNewTokens: config.maxNewTokens,
        temperature: config.temperature,
        stepTemperature: config.stepTemperature,
        maxStepTokens: config.maxStepTokens,
        maxDepth: config.maxDepth,
        exploration: config.exploration,
        maxChildren: config.maxChildren,
        processReward: config.reward === "process",
        locator: config.locator ?? RL_DEFAULT_LOCATOR,
      };
      const progress = ctx.reporter.progress(`[${ctx.node}]`);
      const started = performance.now() - state.seconds * 1000;
      while (state.step < config.updates) {
        const u = state.step;
        const batch = batchIndices(problems.length, config.promptsPerUpdate, u, config.seed).map((i) =>
          problems[i]
        );
        const rollouts = collectRollouts(policy, tok, batch, settings, updateRng(config.seed, u));
        const result = rlUpdate(params, reference.params, modelConfig, optimizer, rollouts, {
          estimator: config.estimator,
          beta: config.beta,
          clipEps: config.clipEps,
          minibatches: config.minibatches,
          lr: config.lr,
          clipNorm: config.clipNorm,
        });
        if (!result.finite) {
          return yield* new NonFiniteLoss({ step: u + 1, loss: result.loss, checkpoint: lastCheckpoint });
        }
        const row = logRow(u + 1, rollouts, result);
        state = {
          step: u + 1,
          log: [...state.log, row],
          kept: [
            ...state.kept,
            ...rollouts.slice(0, config.keepRollouts).map((r) => ({
              update: u + 1,
              prompt: tok.decode([...r.prompt]),
              response: r.text,
              reward: r.reward,
            })),
          ],
          seconds: (performance.now() - started) / 1000,
        };
        progress.update({
          done: state.step,
          total: config.updates,
          loss: row.reward,
          rate: row.length,
          unit: "tok/rollout",
        });
        if (state.step % config.checkpointEvery === 0 && state.step < config.updates) {
          lastCheckpoint = yield* saveRunCheckpoint(
            ctx.dir,
            modelConfig,
            params,
            optimizer,
            state,
            undefined,
          );
        }
      }
      progress.finish();

      yield* saveTrainedModel(`${ctx.dir}/model`, modelConfig, params, initDir, inputs.tokenizer);
      yield* writeJsonl(`${ctx.dir}/rl_log.jsonl`, state.log);
      yield* writeJsonl(`${ctx.dir}/rollouts.jsonl`, state.kept);
      const first = state.log[0], last = state.log[state.log.length - 1];
      yield* writeFileAtomic(
        `${ctx.dir}/rl_summary.json`,
        JSON.stringify(
          {
            updates: state.step,
            rollout: config.rollout,
            traces: config.traces,
            reward: config.reward,
            estimator: config.estimator,
            firstReward: first?.reward,
            lastReward: last?.reward,
            firstAccuracy: first?.accuracy,
            lastAccuracy: last?.accuracy,
          },
          null,
          2,
        ) + "\n",
      );
      yield* writeFileAtomic(
        `${ctx.dir}/rl.meta.json`,
        JSON.stringify({
          seconds: state.seconds,
          backend: ctx.backend,
          numTensorsAtEnd: tf.memory().numTensors,
        }),
      );
      yield* Effect.promise(() => removeIfExists(checkpointDir(ctx.dir)));
      log(
        `reward ${first?.reward.toFixed(3)} -> ${last?.reward.toFixed(3)} over ${state.step} updates ` +
          `(accuracy ${first?.accuracy.toFixed(3)} -> ${last?.accuracy.toFixed(3)})`,
      );
      return { resumed: resumed !== undefined };
    }),
});
