/**
 * The rollouts of RFTT's online RL (arXiv 2502.13389; issue 10), for a batch of problems:
 *
 * - "mcts" (functional traces only): one functional-token tree per prompt (./rftt_search.ts with the model
 *   expander of ./rftt_model_expander.ts: at a node the allowed tags are ordered by the policy's probability
 *   of each opening token, and each step's content is sampled at a low temperature until its closing tag);
 *   each of the tree's rollouts is one training sequence: the path's tokens exactly as written, then EOS
 *   when the path reached `<output>` (the trace format ends with EOS). Its outcome is the path's value.
 * - "sampling": `k` whole responses per prompt at `temperature` (1 in RFTT), no tree. For functional traces
 *   a response earns its outcome only when it parses as a complete trace and ends with EOS; for plain
 *   (chain-of-thought) responses the answer is what the locator extracts, as in evaluation.
 *
 * The process reward (functional traces of the arithmetic task): each step's exact score
 * (`arithStepScores`) on the position of its closing token.
 */
import {
  closeTag,
  FUNCTIONAL_TAGS,
  type FunctionalTag,
  openTag,
  parseTrace,
  renderTrace,
  type Segment,
} from "../data/functional_tokens.ts";
import { extractAnswer, type LocatorSpec, normaliseAnswer } from "../data/locate.ts";
import type { TextTokenizer } from "../data/tokenizer.ts";
import type { Rng } from "../util/rng.ts";
import { type ArithProblem, arithStepScores } from "./rftt_arith.ts";
import { modelExpander, type Policy, sampleTraces } from "./rftt_model_expander.ts";
import { search, segmentsOf } from "./rftt_search.ts";
import { mixedReward, type StepScores } from "./rl_loss.ts";
import type { Rollout } from "./rl_update.ts";

/** One problem of an update. */
export interface RlProblem {
  /** The prompt's token ids (template applied). */
  readonly promptIds: ReadonlyArray<number>;
  /** The gold answer. */
  readonly gold: string;
  /** The arithmetic problem, for the process reward. */
  readonly arith?: ArithProblem;
}

/** How rollouts are made. */
export interface RolloutSettings {
  /** "mcts": a functional-token tree per prompt; "sampling": whole responses. */
  readonly mode: "mcts" | "sampling";
  /** "functional": traces of functional-token segments; "plain": chain-of-thought text. */
  readonly traces: "functional" | "plain";
  /** Rollouts per prompt: the tree's rollouts, or samples. */
  readonly perPrompt: number;
  /** Sampling: most tokens of a response. */
  readonly maxNewTokens: number;
  /** Sampling temperature (1 in RFTT). */
  readonly temperature: number;
  /** MCTS: temperature of each step's content (low in RFTT). */
  readonly stepTemperature: number;
  /** MCTS: most tokens of one step's content, its closing token included. */
  readonly maxStepTokens: number;
  /** MCTS: most steps in a path. */
  readonly maxDepth: number;
  /** MCTS: UCT's exploration weight. */
  readonly exploration: number;
  /** MCTS: most children per node (the policy's most probable allowed tags). */
  readonly maxChildren: number;
  /** Score each step (functional traces of the arithmetic task). */
  readonly processReward: boolean;
  /** Plain traces: where the answer is. */
  readonly locator: LocatorSpec;
}

/** A rollout with what the RL log reports about it. */
export interface CollectedRollout extends Rollout {
  /** The response as text (EOS not included). */
  readonly text: string;
  /** The sequence reward (outcome, or 0.6 outcome + 0.4 mean step score). */
  readonly reward: number;
  /** Functional traces: whether it reached `<output>`; plain: whether an answer was found. */
  readonly reachedOutput: boolean;
  /** Opening functional tokens written, by tag. */
  readonly tags: Readonly<Partial<Record<FunctionalTag, number>>>;
}

const judge = (gold: string) => (answer: string | undefined) =>
  answer !== undefined && normaliseAnswer(answer) === normaliseAnswer(gold) ? 1 : 0;

/** The ids of the functional tokens in `tok`; undefined for a tokenizer without them as single tokens. */
export const functionalIds = (
  tok: TextTokenizer,
): { readonly open: Map<number, FunctionalTag>; readonly close: Set<number> } | undefined => {
  const open = new Map<number, FunctionalTag>(), close = new Set<number>();
  for (const tag of FUNCTIONAL_TAGS) {
    const o = tok.encode(openTag(tag)), c = tok.encode(closeTag(tag));
    if (o.length !== 1 || c.length !== 1) return undefined;
    open.set(o[0], tag);
    close.add(c[0]);
  }
  return { open, close };
};

const tagCounts = (ids: ReadonlyArray<number>, open: ReadonlyMap<number, FunctionalTag> | undefined) => {
  const out: Partial<Record<FunctionalTag, number>> = {};
  if (open === undefined) return out;
  for (const id of ids) {
    const tag = open.get(id);
    if (tag !== undefined) out[tag] = (out[tag] ?? 0) + 1;
  }
  return out;
};

/**
 * Each step's exact score at its closing token's response index, when there is one closing token per
 * segment; undefined otherwise (the process reward then falls back to the outcome).
 */
const processScores = (
  problem: RlProblem,
  segments: ReadonlyArray<Segment>,
  response: ReadonlyArray<number>,
  close: ReadonlySet<number>,
): StepScores | undefined => {
  if (problem.arith === undefined || segments.length === 0) return undefined;
  const positions: number[] = [];
  response.forEach((id, i) => close.has(id) && positions.push(i));
  if (positions.length !== segments.length) return undefined;
  return { scores: arithStepScores(problem.arith, segments), positions };
};

/** The rollouts of `problems` (group = the problem's index), in problem order. */
export const collectRollouts = (
  policy: Policy,
  tok: TextTokenizer,
  problems: ReadonlyArray<RlProblem>,
  settings: RolloutSettings,
  rng: Rng,
): CollectedRollout[] => {
  const ids = settings.traces === "functional" ? functionalIds(tok) : undefined;
  if (settings.traces === "functional" && ids === undefined) {
    throw new RangeError(`the functional tokens are not single tokens in ${tok.path} (run addTokens first)`);
  }
  const finish = (
    problem: RlProblem,
    group: number,
    response: ReadonlyArray<number>,
    text: string,
    outcome: number,
    reachedOutput: boolean,
    segments: ReadonlyArray<Segment> | undefined,
  ): CollectedRollout => {
    const steps = settings.processReward && segments && ids
      ? processScores(problem, segments, response, ids.close)
      : undefined;
    return {
      prompt: problem.promptIds,
      response,
      outcome,
      ...(steps ? { steps } : {}),
      group,
      text,
      reward: mixedReward(outcome, steps),
      reachedOutput,
      tags: tagCounts(response, ids?.open),
    };
  };
  const out: CollectedRollout[] = [];
  if (settings.mode === "mcts") {
    problems.forEach((problem, group) => {
      const expander = modelExpander(policy, tok, {
        promptIds: problem.promptIds,
        maxStepTokens: settings.maxStepTokens,
        temperature: settings.stepTemperature,
        judge: judge(problem.gold),
        maxChildren: settings.maxChildren,
      });
      const tree = search(expander, {
        rollouts: settings.perPrompt,
        maxDepth: settings.maxDepth,
        exploration: settings.exploration,
      }, rng);
      for (const r of tree.rollouts) {
        const leaf = r.path[r.path.length - 1];
        const reached = leaf?.step?.tag === "output";
        const written = leaf?.step?.state.ids ?? [];
        const segments = segmentsOf(r.path);
        out.push(
          finish(
            problem,
            group,
            reached ? [...written, tok.eosId] : written,
            renderTrace(segments),
            r.value,
            reached,
            segments,
          ),
        );
      }
    });
    return out;
  }
  const prompts = problems.flatMap((p) => Array.from({ length: settings.perPrompt }, () => p.promptIds));
  const owner = (i: number) => Math.floor(i / settings.perPrompt);
  if (settings.traces === "functional") {
    sampleTraces(policy, tok, prompts, settings.maxNewTokens, settings.temperature, rng).forEach((s, i) => {
      const problem = problems[owner(i)];
      const parsed = s.valid ? parseTrace(s.text) : undefined;
      const segments = parsed?.ok ? parsed.segments : undefined;
      out.push(finish(problem, owner(i), s.ids, s.text, judge(problem.gold)(s.answer), s.valid, segments));
    });
    return out;
  }
  policy.continue(prompts, (t) => t === tok.eosId, settings.maxNewTokens, settings.temperature, rng)
    .forEach((response, i) => {
      const problem = problems[owner(i)];
      const ended = response.length > 0 && response[response.length - 1] === tok.eosId;
      const text = tok.decode(ended ? response.slice(0, -1) : response);
      const answer = extractAnswer(text, settings.locator);
      out.push(
        finish(
          problem,
          owner(i),
          response,
          text,
          judge(problem.gold)(answer),
          answer !== undefined,
          undefined,
        ),
      );
    });
  return out;
};

/** One row of rl_log.jsonl. */
export interface RlLogRow {
  /** 1-based update number. */
  readonly update: number;
  /** Mean sequence reward (the process mix included). */
  readonly reward: number;
  /** Share of rollouts with the correct answer. */
  readonly accuracy: number;
  /** Mean per-token KL (k1) of the rollout policy to the reference. */
  readonly kl: number;
  /** Mean response length in tokens. */
  readonly length: number;
  /** Share of response tokens whose ratio was clipped. */
  readonly clipFraction: number;
  /** Share of rollouts reaching `<output>` (plain traces: with an answer found). */
  readonly outputShare: number;
  /** Mean count of each opening functional token per rollout. */
  readonly functionalTokens: Readonly<Record<string, number>>;
  /** Mean PPO loss. */
  readonly loss: number;
  /** Mean gradient norm before clipping. */
  readonly gradNorm: number;
  /** Rollouts in the update. */
  readonly rollouts: number;
}

const mean = (xs: ReadonlyArray<number>) => xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;

/** The log row of an update's rollouts and its measured update. */
export const logRow = (
  update: number,
  rollouts: ReadonlyArray<CollectedRollout>,
  measured: { loss: number; gradNorm: number; clipFraction: number; kl: number },
): RlLogRow => {
  const tags: Record<string, number> = {};
  for (const r of rollouts) {
    for (const [tag, n] of Object.entries(r.tags)) tags[tag] = (tags[tag] ?? 0) + n! / rollouts.length;
  }
  return {
    update,
    reward: mean(rollouts.map((r) => r.reward)),
    accuracy: mean(rollouts.map((r) => r.outcome)),
    kl: measured.kl,
    length: mean(rollouts.map((r) => r.response.length)),
    clipFraction: measured.clipFraction,
    outputShare: mean(rollouts.map((r) => (r.reachedOutput ? 1 : 0))),
    functionalTokens: tags,
    loss: measured.loss,
    gradNorm: measured.gradNorm,
    rollouts: rollouts.length,
  };
};
