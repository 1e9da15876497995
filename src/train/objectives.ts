/**
 * Per-token training objectives: what a trained token contributes to the loss, as a function of the
 * model's log-probability of the gold token, l = log q. The loss of a batch is always
 * sum_i(w_i * loss(l_i)) / sum_i(w_i) (src/train/loss.ts); masks choose the tokens and weights, an
 * objective chooses the per-token function.
 *
 * Every objective depends on the logits only through l, so with p = softmax(z) its gradient with respect
 * to the logits of a row is slope(l) * (onehot(y) - p), where slope = d loss / d l. That is what lets the
 * hand-written cross-entropy kernel serve every objective exactly: it scales the softmax-minus-one-hot row
 * by -slope instead of by 1, at no extra cost.
 *
 * - "ce": plain SFT, -log q.
 * - "dft": Dynamic Fine-Tuning (Wu et al., "On the Generalization of SFT: A Reinforcement Learning
 *   Perspective with Reward Rectification", arXiv 2508.05629): -sg(q) * log q, where sg is a
 *   stop-gradient, so slope = -q (the CE gradient rescaled by the token's own probability). Note that this
 *   is exactly the gradient of 1 - q: DFT and the total-variation objective below take identical steps and
 *   differ only in the loss value they report.
 * - The f-divergence objectives of Wang et al., "Implicit Reward as the Bridge: A Unified View of SFT and
 *   DPO Connections" (arXiv 2507.00018): D_f(P || Q) between the one-hot data distribution P at the gold
 *   token and the model's distribution Q is sum_v Q_v f(P_v / Q_v) = q f(1/q) + (1 - q) f(0), which gives
 *     "tv"        f(t) = |t - 1| / 2                                  -> 1 - q
 *     "chi2"      f(t) = (t - 1)^2          (Pearson chi^2)           -> 1/q - 1
 *     "hellinger" f(t) = (sqrt(t) - 1)^2    (squared Hellinger)       -> 2 - 2 sqrt(q)
 *     "js"        f(t) = (t log(2t/(t+1)) + log(2/(t+1))) / 2         -> (2 log 2 - (1+q) log(1+q) + q log q) / 2
 *   and KL (f(t) = t log t) gives -log q, i.e. "ce". Only the paper's abstract could be read from our
 *   machines (its body was not reachable), so these are derived from that definition with the standard
 *   generator functions, not copied from the paper's tables; constants that do not depend on q are kept so
 *   every loss is 0 at q = 1 and equals the divergence itself.
 */
import { Schema } from "effect";

export const Objective = Schema.Literal("ce", "dft", "tv", "chi2", "hellinger", "js");
export type Objective = typeof Objective.Type;

export interface TokenObjective {
  /** The loss of one token whose gold log-probability is `l`. */
  readonly value: (l: number) => number;
  /** d value / d l, stop-gradients applied (what the backward pass uses). */
  readonly slope: (l: number) => number;
}

const LN2 = Math.LN2;

export const objectives: { readonly [O in Objective]: TokenObjective } = {
  ce: { value: (l) => -l, slope: () => -1 },
  dft: { value: (l) => -Math.exp(l) * l, slope: (l) => -Math.exp(l) },
  tv: { value: (l) => 1 - Math.exp(l), slope: (l) => -Math.exp(l) },
  chi2: { value: (l) => Math.exp(-l) - 1, slope: (l) => -Math.exp(-l) },
  hellinger: { value: (l) => 2 - 2 * Math.exp(l / 2), slope: (l) => -Math.exp(l / 2) },
  js: {
    value: (l) => {
      const q = Math.exp(l);
      return (2 * LN2 - (1 + q) * Math.log1p(q) + q * l) / 2;
    },
    // d/dq = log(q / (1 + q)) / 2, and dq/dl = q.
    slope: (l) => {
      const q = Math.exp(l);
      return (q * (l - Math.log1p(q))) / 2;
    },
  },
};
