/**
 * One RL update on a batch of rollouts (RFTT's second phase; the objective is ./rl_loss.ts): the rollout
 * policy's and the frozen reference's log-probabilities of every response token, the advantages
 * (REINFORCE++: KL-penalised token rewards, gamma = 1 returns normalised over the batch; or GRPO: rewards
 * normalised within each prompt's group, the KL in the loss), then `minibatches` optimizer steps of the
 * PPO-clip loss, each on a contiguous slice of the rollouts (OpenRLHF's train batch smaller than its
 * rollout batch: from the second slice on the policy has moved, so the ratio leaves 1 and clipping acts).
 *
 * A rollout is a prompt and the response the policy wrote for it; `mask` can leave response tokens out of
 * the loss (none are left out by the rl step: every token of a path, the functional tokens the search
 * placed included, is an action of the policy). Rollouts with no response token are counted but not
 * trained on. Everything is deterministic given the parameters and the batch.
 */
import * as tf from "@tensorflow/tfjs";
import type { ModelConfig } from "../model/config.ts";
import type { Params } from "../model/model.ts";
import type { AdamW } from "./adamw.ts";
import {
  type AdvantageEstimator,
  advantages,
  clipFraction,
  meanKl,
  ppoClipLoss,
  RL_DEFAULTS,
  sequenceLogProbs,
  type StepScores,
} from "./rl_loss.ts";
import { applyGradients, gradientAccumulator } from "./step.ts";

/** One rollout: the prompt's ids, the response's ids and what it earned. */
export interface Rollout {
  /** The prompt's token ids (not trained on). */
  readonly prompt: ReadonlyArray<number>;
  /** The response's token ids, as the policy wrote them (EOS included when written). */
  readonly response: ReadonlyArray<number>;
  /** 1 for a correct answer, else 0. */
  readonly outcome: number;
  /** Process reward: each step's score and the response index of its closing token. */
  readonly steps?: StepScores;
  /** Its group (the prompt it answers), for GRPO. */
  readonly group: number;
}

/** The update's settings. */
export interface RlUpdateOptions {
  /** REINFORCE++ or GRPO. */
  readonly estimator: AdvantageEstimator;
  /** KL coefficient (0.01 in RFTT). */
  readonly beta: number;
  /** PPO's clip range (0.2). */
  readonly clipEps: number;
  /** Optimizer steps on the batch, each on a contiguous slice of it. */
  readonly minibatches: number;
  /** Learning rate. */
  readonly lr: number;
  /** Global gradient-norm clipping threshold. */
  readonly clipNorm: number;
}

/** What an update measured. */
export interface RlUpdateResult {
  /** Mean PPO loss over the optimizer steps (before each step). */
  readonly loss: number;
  /** Mean gradient norm before clipping. */
  readonly gradNorm: number;
  /** Share of response tokens whose ratio was clipped, over the optimizer steps. */
  readonly clipFraction: number;
  /** Mean per-token k1 KL of the rollout policy to the reference. */
  readonly kl: number;
  /** Rollouts trained on (those with at least one response token). */
  readonly trained: number;
  /** False when the loss or gradient was not finite: the caller stops. */
  readonly finite: boolean;
}

interface Padded {
  readonly ids: number[][];
  readonly mask: number[][];
}

/** Prompt + response of each rollout, right-padded (id 0) to a common length; mask 1 at response tokens. */
const padRollouts = (rollouts: ReadonlyArray<Rollout>): Padded => {
  let width = 0;
  for (const r of rollouts) width = Math.max(width, r.prompt.length + r.response.length);
  return {
    ids: rollouts.map((r) => {
      const row = [...r.prompt, ...r.response];
      while (row.length < width) row.push(0);
      return row;
    }),
    mask: rollouts.map((r) =>
      Array.from(
        { length: width },
        (_, t) => t >= r.prompt.length && t < r.prompt.length + r.response.length ? 1 : 0,
      )
    ),
  };
};

const logProbsOf = (params: Params, config: ModelConfig, p: Padded): number[][] =>
  tf.tidy(() => sequenceLogProbs(params, config, p.ids, p.mask)).arraySync();

const slices = (n: number, parts: number): Array<[number, number]> => {
  const k = Math.max(1, Math.min(parts, n));
  return Array.from({ length: k }, (_, i) => [Math.floor((i * n) / k), Math.floor(((i + 1) * n) / k)]);
};

/** One update of `params` (the policy) on `batch` against `ref` (the frozen reference). */
export const rlUpdate = (
  params: Params,
  ref: Params,
  config: ModelConfig,
  optimizer: AdamW,
  batch: ReadonlyArray<Rollout>,
  options: RlUpdateOptions,
): RlUpdateResult => {
  const rollouts = batch.filter((r) => r.response.length > 0);
  if (rollouts.length === 0) {
    return { loss: 0, gradNorm: 0, clipFraction: 0, kl: 0, trained: 0, finite: true };
  }
  const all = padRollouts(rollouts);
  const old = logProbsOf(params, config, all);
  const refLp = logProbsOf(ref, config, all);
  const offset = (r: Rollout) => r.prompt.length;
  const steps = rollouts.some((r) => r.steps !== undefined)
    ? rollouts.map((r) => ({
      scores: r.steps?.scores ?? [],
      positions: (r.steps?.positions ?? []).map((p) => p + offset(r)),
    }))
    : undefined;
  const adv = advantages({
    estimator: options.estimator,
    beta: options.beta,
    mask: all.mask,
    oldLogProbs: old,
    refLogProbs: refLp,
    outcome: rollouts.map((r) => r.outcome),
    ...(steps ? { steps } : {}),
    group: rollouts.map((r) => r.group),
  });
  let lossSum = 0, normSum = 0, clipped = 0, finite = true;
  const parts = slices(rollouts.length, options.minibatches);
  for (const [from, to] of parts) {
    const sub = padRollouts(rollouts.slice(from, to));
    // Rows of the whole batch, cut to this slice's width (its own longest rollout).
    const cut = (m: ReadonlyArray<ReadonlyArray<number>>) =>
      m.slice(from, to).map((row) => row.slice(0, sub.mask[0].length));
    const acc = gradientAccumulator(params);
    let current: number[][] = [];
    const loss = acc.add(() => {
      const logProbs = sequenceLogProbs(params, config, sub.ids, sub.mask);
      current = logProbs.arraySync();
      return ppoClipLoss({
        logProbs,
        oldLogProbs: cut(old),
        advantages: cut(adv),
        mask: sub.mask,
        clipEps: options.clipEps,
        ...(options.estimator === "grpo" ? { kl: { refLogProbs: cut(refLp), beta: options.beta } } : {}),
      });
    });
    clipped += clipFraction(current, cut(old), sub.mask, options.clipEps) / parts.length;
    const { gradNorm, applied } = applyGradients(optimizer, acc.grads, loss, options);
    lossSum += loss;
    normSum += gradNorm;
    if (!applied) {
      finite = false;
      break;
    }
  }
  return {
    loss: lossSum / parts.length,
    gradNorm: normSum / parts.length,
    clipFraction: clipped,
    kl: meanKl(old, refLp, all.mask),
    trained: rollouts.length,
    finite,
  };
};

/** RFTT's update settings: REINFORCE++, beta 0.01, eps 0.2. */
export const RL_UPDATE_DEFAULTS: Omit<RlUpdateOptions, "lr"> = {
  estimator: "reinforce++",
  beta: RL_DEFAULTS.beta,
  clipEps: RL_DEFAULTS.clipEps,
  minibatches: 2,
  clipNorm: 1,
};
