/**
 * The reinforcement-learning objective of RFTT's second phase (arXiv 2502.13389, whose code trains with
 * OpenRLHF's REINFORCE++): rewards, returns and advantages are computed from the rollout batch as plain
 * numbers (they carry no gradient), and the PPO-clip loss is a tfjs function of the policy's current
 * per-token log-probabilities.
 *
 * A batch is B rollouts padded to T response positions: `mask[i][t]` is 1 for a response token of rollout
 * i (the tokens the policy wrote, EOS included) and 0 for padding. Every array here is [B][T].
 *
 * - Token rewards: r_t = -beta * (logp_old_t - logp_ref_t) on every response token (the KL penalty against
 *   the frozen warm-up model, k1 estimator), plus the sequence reward on its last response token.
 *   With a process reward, each step's score also sits on the position of its closing tag and the sequence
 *   reward is 0.6 * outcome + 0.4 * mean step score.
 * - Returns: gamma = 1, G_t = sum over s >= t of r_s.
 * - REINFORCE++ advantages: the returns normalised over every response token of the batch,
 *   A = (G - mean) / (std + 1e-8), population std.
 * - GRPO advantages (option): per group of rollouts of one prompt, A_i = (R_i - mean_g) / (std_g + 1e-4)
 *   on every token of rollout i (sample std, as TRL's GRPOTrainer), the KL moving from the reward into
 *   the loss as beta times the k3 estimator exp(ref - logp) - (ref - logp) - 1, as in DeepSeekMath's GRPO.
 * - Loss: per token -min(rho * A, clip(rho, 1 - eps, 1 + eps) * A) with rho = exp(logp - logp_old),
 *   averaged over each rollout's response tokens, then over rollouts (OpenRLHF's PolicyLoss). No critic.
 */
import * as tf from "@tensorflow/tfjs";
import type { ModelConfig } from "../model/config.ts";
import { logitsAt, type Params } from "../model/model.ts";

/** Per-token values of a batch: one row per rollout, one column per response position. */
export type Matrix = ReadonlyArray<ReadonlyArray<number>>;

/** The defaults of the method: beta = 0.01 (KL), eps = 0.2 (clip), process mix 0.6 / 0.4. */
export const RL_DEFAULTS = { beta: 0.01, clipEps: 0.2, outcomeShare: 0.6, processShare: 0.4 } as const;

const NORM_EPS = 1e-8;
const GRPO_EPS = 1e-4;

const shapeOf = (m: Matrix): [number, number] => [m.length, m[0]?.length ?? 0];

const checkSameShape = (what: string, a: Matrix, mask: Matrix) => {
  const [b, t] = shapeOf(mask);
  if (a.length !== b || a.some((row) => row.length !== t)) {
    throw new RangeError(`${what} must be ${b} x ${t} like the mask`);
  }
};

/** Index of the last response token of each rollout; RangeError for a rollout with none. */
export const lastResponseIndex = (mask: Matrix): number[] =>
  mask.map((row, i) => {
    for (let t = row.length - 1; t >= 0; t--) if (row[t] !== 0) return t;
    throw new RangeError(`rollout ${i} has no response token`);
  });

/** One rollout's process reward: each step's score and the response position of its closing tag. */
export interface StepScores {
  /** Each step's score. */
  readonly scores: ReadonlyArray<number>;
  /** The response position of each step's closing tag. */
  readonly positions: ReadonlyArray<number>;
}

/** The sequence reward with a process reward: 0.6 * outcome + 0.4 * mean step score (outcome alone without steps). */
export const mixedReward = (outcome: number, steps: StepScores | undefined): number => {
  if (steps === undefined || steps.scores.length === 0) return outcome;
  const mean = steps.scores.reduce((a, b) => a + b, 0) / steps.scores.length;
  return RL_DEFAULTS.outcomeShare * outcome + RL_DEFAULTS.processShare * mean;
};

/** What the per-token rewards are computed from. */
export interface TokenRewardInput {
  /** 1 at each rollout's response tokens, 0 elsewhere. */
  readonly mask: Matrix;
  /** log pi of each token under the policy that wrote it (at rollout time). */
  readonly oldLogProbs: Matrix;
  /** log pi_ref of each token under the frozen reference (warm-up) model. */
  readonly refLogProbs: Matrix;
  /** The outcome reward of each rollout: 1 correct, 0 otherwise. */
  readonly outcome: ReadonlyArray<number>;
  /** With the process-reward option: each rollout's step scores. */
  readonly steps?: ReadonlyArray<StepScores>;
  /** KL coefficient; 0 leaves the KL out of the reward (GRPO puts it into the loss instead). */
  readonly beta: number;
}

/** Per-token rewards r[i][t] (0 on padding). */
export const tokenRewards = (input: TokenRewardInput): number[][] => {
  const { mask, beta } = input;
  checkSameShape("oldLogProbs", input.oldLogProbs, mask);
  checkSameShape("refLogProbs", input.refLogProbs, mask);
  if (input.outcome.length !== mask.length) throw new RangeError("one outcome per rollout");
  const last = lastResponseIndex(mask);
  return mask.map((row, i) => {
    const r = row.map((m, t) => m === 0 ? 0 : -beta * (input.oldLogProbs[i][t] - input.refLogProbs[i][t]));
    const steps = input.steps?.[i];
    if (steps !== undefined) {
      steps.scores.forEach((s, k) => {
        const p = steps.positions[k];
        if (!(p >= 0 && p < row.length && row[p] !== 0)) {
          throw new RangeError(`rollout ${i}: step ${k}'s closing tag position ${p} is not a response token`);
        }
        r[p] += s;
      });
    }
    r[last[i]] += mixedReward(input.outcome[i], steps);
    return r;
  });
};

/** Returns with gamma = 1: G[i][t] = sum of r[i][s] over response positions s >= t (0 on padding). */
export const returnsToGo = (rewards: Matrix, mask: Matrix): number[][] =>
  rewards.map((row, i) => {
    const g = new Array<number>(row.length).fill(0);
    let acc = 0;
    for (let t = row.length - 1; t >= 0; t--) {
      if (mask[i][t] === 0) continue;
      acc += row[t];
      g[t] = acc;
    }
    return g;
  });

/** REINFORCE++: `values` normalised over every response token of the batch (0 on padding). */
export const batchNormalised = (values: Matrix, mask: Matrix): number[][] => {
  let n = 0, sum = 0;
  values.forEach((row, i) => row.forEach((v, t) => mask[i][t] !== 0 && (n++, sum += v)));
  if (n === 0) throw new RangeError("no response tokens in the batch");
  const mean = sum / n;
  let sq = 0;
  values.forEach((row, i) => row.forEach((v, t) => mask[i][t] !== 0 && (sq += (v - mean) ** 2)));
  const std = Math.sqrt(sq / n);
  return values.map((row, i) => row.map((v, t) => mask[i][t] === 0 ? 0 : (v - mean) / (std + NORM_EPS)));
};

/**
 * GRPO: each rollout's sequence reward normalised within its group (the rollouts of one prompt), placed on
 * every response token. `group[i]` names rollout i's group; a group of one gets advantage 0.
 */
export const groupNormalised = (
  rewards: ReadonlyArray<number>,
  group: ReadonlyArray<number | string>,
  mask: Matrix,
): number[][] => {
  if (rewards.length !== mask.length || group.length !== mask.length) {
    throw new RangeError("one reward and one group per rollout");
  }
  const members = new Map<number | string, number[]>();
  group.forEach((g, i) => members.set(g, [...members.get(g) ?? [], i]));
  const adv = new Array<number>(rewards.length).fill(0);
  for (const idx of members.values()) {
    if (idx.length < 2) continue;
    const mean = idx.reduce((s, i) => s + rewards[i], 0) / idx.length;
    const std = Math.sqrt(idx.reduce((s, i) => s + (rewards[i] - mean) ** 2, 0) / (idx.length - 1));
    for (const i of idx) adv[i] = (rewards[i] - mean) / (std + GRPO_EPS);
  }
  return mask.map((row, i) => row.map((m) => m === 0 ? 0 : adv[i]));
};

/** REINFORCE++ (batch-normalised returns) or GRPO (rewards normalised within each prompt's group). */
export type AdvantageEstimator = "reinforce++" | "grpo";

/** What `advantages` needs: the token-reward inputs, the estimator and, for GRPO, the groups. */
export interface AdvantageInput extends Omit<TokenRewardInput, "beta"> {
  /** Which estimator. */
  readonly estimator: AdvantageEstimator;
  /** The KL coefficient (default RL_DEFAULTS.beta). */
  readonly beta?: number;
  /** GRPO: each rollout's group (its prompt). */
  readonly group?: ReadonlyArray<number | string>;
}

/**
 * The advantages of a rollout batch for either estimator. REINFORCE++ puts the KL penalty into the token
 * rewards; GRPO leaves it out (ppoClipLoss adds it to the loss when given `kl`).
 */
export const advantages = (input: AdvantageInput): number[][] => {
  const beta = input.beta ?? RL_DEFAULTS.beta;
  if (input.estimator === "grpo") {
    if (input.group === undefined) throw new RangeError("GRPO needs each rollout's group");
    const seq = input.outcome.map((o, i) => mixedReward(o, input.steps?.[i]));
    return groupNormalised(seq, input.group, input.mask);
  }
  const r = tokenRewards({ ...input, beta });
  return batchNormalised(returnsToGo(r, input.mask), input.mask);
};

/** What the PPO clipped loss needs. */
export interface PpoLossInput {
  /** log pi_theta of each response token under the policy being trained: [B, T], differentiable. */
  readonly logProbs: tf.Tensor2D;
  /** log pi_old of each response token (at rollout time). */
  readonly oldLogProbs: Matrix;
  /** Each token's advantage. */
  readonly advantages: Matrix;
  /** 1 at response tokens, 0 elsewhere. */
  readonly mask: Matrix;
  /** The clip range eps (default RL_DEFAULTS.clipEps). */
  readonly clipEps?: number;
  /** GRPO: beta * k3(pi_theta, pi_ref) per token, in the loss. */
  readonly kl?: { readonly refLogProbs: Matrix; readonly beta: number };
}

/**
 * The PPO-clip loss (a scalar): per token -min(rho A, clip(rho, 1 - eps, 1 + eps) A) (+ beta k3 with
 * `kl`), a masked mean over each rollout's response tokens, then the mean over rollouts.
 */
export const ppoClipLoss = (input: PpoLossInput): tf.Scalar =>
  tf.tidy(() => {
    const { mask } = input;
    const [b, t] = shapeOf(mask);
    if (input.logProbs.shape[0] !== b || input.logProbs.shape[1] !== t) {
      throw new RangeError(`logProbs must be ${b} x ${t} like the mask`);
    }
    checkSameShape("oldLogProbs", input.oldLogProbs, mask);
    checkSameShape("advantages", input.advantages, mask);
    const eps = input.clipEps ?? RL_DEFAULTS.clipEps;
    const m = tf.tensor2d(mask.map((r) => [...r]), [b, t], "float32");
    const old = tf.tensor2d(input.oldLogProbs.map((r) => [...r]), [b, t], "float32");
    const adv = tf.tensor2d(input.advantages.map((r) => [...r]), [b, t], "float32");
    // Padding positions may hold anything (even -Infinity): they are replaced before exp.
    const logp = tf.where(tf.greater(m, 0), input.logProbs, old);
    const ratio = tf.exp(tf.sub(logp, old));
    const surr1 = tf.mul(ratio, adv);
    const surr2 = tf.mul(tf.clipByValue(ratio, 1 - eps, 1 + eps), adv);
    let perToken: tf.Tensor2D = tf.neg(tf.minimum(surr1, surr2));
    if (input.kl !== undefined) {
      checkSameShape("refLogProbs", input.kl.refLogProbs, mask);
      const ref = tf.tensor2d(input.kl.refLogProbs.map((r) => [...r]), [b, t], "float32");
      const d = tf.sub(ref, logp);
      perToken = tf.add(perToken, tf.mul(input.kl.beta, tf.sub(tf.sub(tf.exp(d), d), 1)));
    }
    const counts = tf.sum(m, 1);
    if ((counts.dataSync() as Float32Array).some((c) => c === 0)) {
      throw new RangeError("every rollout needs at least one response token");
    }
    const perSequence = tf.div(tf.sum(tf.mul(perToken, m), 1), counts);
    return tf.mean(perSequence) as tf.Scalar;
  });

/** Share of response tokens whose ratio lies outside [1 - eps, 1 + eps] (the RL log's clip fraction). */
export const clipFraction = (
  logProbs: Matrix,
  oldLogProbs: Matrix,
  mask: Matrix,
  clipEps: number,
): number => {
  let n = 0, clipped = 0;
  mask.forEach((row, i) =>
    row.forEach((m, t) => {
      if (m === 0) return;
      n++;
      const rho = Math.exp(logProbs[i][t] - oldLogProbs[i][t]);
      if (rho < 1 - clipEps || rho > 1 + clipEps) clipped++;
    })
  );
  return n === 0 ? 0 : clipped / n;
};

/** Mean per-token k1 KL estimate (logp - logp_ref) over the batch's response tokens (the RL log's KL). */
export const meanKl = (logProbs: Matrix, refLogProbs: Matrix, mask: Matrix): number => {
  let n = 0, s = 0;
  mask.forEach((row, i) => row.forEach((m, t) => m !== 0 && (n++, s += logProbs[i][t] - refLogProbs[i][t])));
  return n === 0 ? 0 : s / n;
};

/**
 * log pi(ids[b][t] | ids[b][< t]) under the model, [B, L] (0 where `mask` is 0), differentiable with
 * respect to the parameters: the log-probabilities of a rollout batch's response tokens, for the loss
 * (current policy) or as constants (rollout policy, reference). `ids` are right-padded to a common length
 * L; `mask[b][t]` is 1 for the response tokens (never at t = 0, which nothing predicts).
 *
 * Every position's next-token log-probabilities are computed ([B (L - 1), V]) and the target's is picked
 * with a one-hot product: no `gather` on the way, because tfjs differentiates gather with an unsorted
 * segment sum that its cpu backends run as one pass over the data per output element (a 16-rollout batch
 * took over two minutes per update that way; now about a second).
 */
export const sequenceLogProbs = (
  params: Params,
  config: ModelConfig,
  ids: ReadonlyArray<ReadonlyArray<number>>,
  mask: Matrix,
): tf.Tensor2D =>
  tf.tidy(() => {
    const [b, l] = shapeOf(mask);
    if (ids.length !== b || ids.some((row) => row.length !== l)) {
      throw new RangeError(`ids must be ${b} x ${l} like the mask`);
    }
    mask.forEach((row, i) => {
      if (row[0] !== 0) throw new RangeError(`rollout ${i}: position 0 cannot be a response token`);
    });
    if (l < 2) return tf.zeros([b, l]) as tf.Tensor2D;
    // Positions (i, t - 1) predict ids[i][t], t = 1 .. L - 1.
    const rows = Int32Array.from({ length: b * (l - 1) }, (_, k) =>
      Math.floor(k / (l - 1)) * l + (k % (l - 1)));
    const targets = Int32Array.from({ length: b * (l - 1) }, (_, k) =>
      ids[Math.floor(k / (l - 1))][(k % (l - 1)) + 1]);
    const x = tf.tensor2d(ids.map((r) => [...r]), [b, l], "int32");
    const logp = tf.logSoftmax(logitsAt(params, config, x, rows));
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(targets, "int32"), config.vocabSize)), 1);
    const shifted = tf.concat([tf.zeros([b, 1]), tf.reshape(picked, [b, l - 1])], 1);
    const m = tf.tensor2d(mask.map((r) => [...r]), [b, l], "float32");
    return tf.where(tf.greater(m, 0), shifted, tf.zerosLike(shifted)) as tf.Tensor2D;
  });
