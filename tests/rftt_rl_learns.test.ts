/**
 * RL learns (issue 10): on a toy task with a learnable reward, the mean reward of the rl update's own
 * rollouts rises within a fixed budget; with the reward removed (every rollout earns the same), it does not.
 *
 * Toy task: a fresh one-layer model of 8 tokens writes 4 tokens at temperature 1 after the prompt [1, 2];
 * a rollout earns 1 when it contains token 5 (about 40% of rollouts at the start: a uniform-ish policy
 * writes it with probability 1 - (7/8)^4). Both estimators are checked.
 */
import { assert } from "./assert.ts";
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { generate } from "../src/model/generate.ts";
import { disposeParams, initParams, type Params } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import type { AdvantageEstimator } from "../src/train/rl_loss.ts";
import { RL_UPDATE_DEFAULTS, rlUpdate, type Rollout } from "../src/train/rl_update.ts";
import { Rng } from "../src/util/rng.ts";

await Effect.runPromise(useBackend("cpu"));

const config: ModelConfig = {
  architecture: "llama",
  vocabSize: 8,
  hiddenSize: 16,
  numLayers: 1,
  numHeads: 2,
  numKvHeads: 1,
  intermediateSize: 32,
  maxPositions: 16,
  ropeTheta: 10000,
  rmsNormEps: 1e-5,
  tieEmbeddings: false,
};
const PROMPT = [1, 2];
const TARGET = 5;
const UPDATES = 12;
const ROLLOUTS = 16;

const copy = (p: Params): Params => {
  const out: Params = new Map();
  for (const [k, v] of p) out.set(k, v.clone().variable(false) as never);
  return out;
};

/** Mean reward of each update's rollouts; `reward` null means the constant reward (no signal). */
const run = (estimator: AdvantageEstimator, learnable: boolean): number[] => {
  const params = initParams(config, Rng.seeded(3));
  const ref = copy(params);
  const optimizer = new AdamW(params);
  const rng = Rng.seeded(11);
  const means: number[] = [];
  for (let u = 0; u < UPDATES; u++) {
    const outs = generate(params, config, Array.from({ length: ROLLOUTS }, () => PROMPT), {
      maxNewTokens: 4,
      temperature: 1,
      rng,
    });
    const hit: number[] = outs.map((o) => (o.includes(TARGET) ? 1 : 0));
    means.push(hit.reduce((a, b) => a + b, 0) / ROLLOUTS);
    const batch: Rollout[] = outs.map((response, i) => ({
      prompt: PROMPT,
      response,
      outcome: learnable ? hit[i] : 1,
      group: 0,
    }));
    const r = rlUpdate(params, ref, config, optimizer, batch, { ...RL_UPDATE_DEFAULTS, estimator, lr: 0.03 });
    assert(r.finite);
  }
  disposeParams(params);
  disposeParams(ref);
  return means;
};

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

for (const estimator of ["reinforce++", "grpo"] as const) {
  Deno.test(`RL learns (${estimator}): the reward rises with a learnable reward, not without one`, () => {
    const learned = run(estimator, true);
    const constant = run(estimator, false);
    const start = mean(learned.slice(0, 3)), end = mean(learned.slice(-3));
    const flatEnd = mean(constant.slice(-3));
    const msg = `${estimator} learnable ${learned.join(" ")} | constant ${constant.join(" ")}`;
    assert(end >= 0.85 && end - start >= 0.3, msg);
    assert(flatEnd < 0.7 && Math.abs(flatEnd - mean(constant.slice(0, 3))) < 0.25, msg);
  });
}
