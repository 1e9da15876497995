/**
 * The model expander of RFTT's tree search (and of its RL rollouts): the current model writes each step.
 * At a node, the allowed functional tags are ordered by the policy's probability of each tag's opening
 * token after the trace so far (the order the search tries unvisited children in), then, for every allowed
 * tag at once (one batched generation), the model continues the trace after `<tag>\n` until it writes a
 * token that ends a step. A step is kept only when that token is the tag's own closing token and the
 * content before it is non-empty: anything else (another functional token, EOS, running out of tokens)
 * would not be a well-formed segment, so that child is dropped. `<output>` steps are scored by a judge.
 *
 * `sampleTraces` is the plain-sampling alternative (no tree): whole responses sampled until EOS.
 *
 * The policy is an interface so the search logic is testable without a trained model; `modelPolicy` is
 * the one backed by a checkpoint (../model/generate.ts).
 */
import * as tf from "@tensorflow/tfjs";
import {
  closeTag,
  FUNCTIONAL_TOKENS,
  type FunctionalTag,
  openTag,
  parseTrace,
  traceAnswer,
} from "../data/functional_tokens.ts";
import type { TextTokenizer } from "../data/tokenizer.ts";
import type { ModelConfig } from "../model/config.ts";
import { generate } from "../model/generate.ts";
import { forward, type Params, tidyValues } from "../model/model.ts";
import type { Expander, ProposedStep } from "./rftt_search.ts";
import type { Rng } from "../util/rng.ts";

/** What the expander needs from a model. */
export interface Policy {
  /** Next-token logits after `ids` (the whole vocabulary). */
  readonly nextLogits: (ids: ReadonlyArray<number>) => Float32Array;
  /**
   * New tokens for each prompt; a row stops after writing a token for which `stop` holds (kept in its
   * output) or after `maxNewTokens`.
   */
  readonly continue: (
    prompts: ReadonlyArray<ReadonlyArray<number>>,
    stop: (token: number) => boolean,
    maxNewTokens: number,
    temperature: number,
    rng: Rng,
  ) => number[][];
}

/** A Policy backed by model parameters. */
export const modelPolicy = (params: Params, config: ModelConfig): Policy => ({
  nextLogits: (ids) =>
    tidyValues(() =>
      forward(params, config, tf.tensor2d([[...ids]], [1, ids.length], "int32"), undefined, {
        lastPositionOnly: true,
      })
    ),
  continue: (prompts, stop, maxNewTokens, temperature, rng) =>
    generate(params, config, prompts, {
      maxNewTokens,
      temperature,
      ...(temperature > 0 ? { rng } : {}),
      shouldStop: (_, tokens) => stop(tokens[tokens.length - 1]),
    }),
});

/** The id of each functional token in `tok`; throws RangeError when one is not a single token. */
export const functionalTokenIds = (tok: TextTokenizer): ReadonlyMap<string, number> => {
  const ids = new Map<string, number>();
  for (const t of FUNCTIONAL_TOKENS) {
    const enc = tok.encode(t);
    if (enc.length !== 1) {
      throw new RangeError(`${t} is not one token in ${tok.path} (run the addTokens step first)`);
    }
    ids.set(t, enc[0]);
  }
  return ids;
};

export interface ModelExpanderOptions {
  /** The prompt's token ids (the chat template or prompt template already applied). */
  readonly promptIds: ReadonlyArray<number>;
  /** Most tokens of one step's content (the closing token included). */
  readonly maxStepTokens: number;
  /** Sampling temperature of step contents (RFTT samples at a low temperature); 0 is greedy. */
  readonly temperature: number;
  /** 1 when an `<output>` answer is correct, else 0. */
  readonly judge: (answer: string) => number;
  /**
   * Most children per node: only the most probable allowed tags are written (all of them when absent).
   * The search tries unvisited children in this order anyway; fewer children make each expansion cheaper.
   */
  readonly maxChildren?: number;
}

/** Allowed tags, most probable opening token first (ties keep the table's order). */
export const orderTags = (
  logits: Float32Array,
  allowedTags: ReadonlyArray<FunctionalTag>,
  ids: ReadonlyMap<string, number>,
): FunctionalTag[] =>
  allowedTags
    .map((tag, i) => ({ tag, i, logit: logits[ids.get(openTag(tag))!] }))
    .sort((a, b) => b.logit - a.logit || a.i - b.i)
    .map((x) => x.tag);

/**
 * The token ids of a trace as the search built it: what RL trains on, exactly as the model wrote it (no
 * re-encoding of the text). `sampled[i]` is true for the tokens the model generated (each step's content
 * and its closing token), false for those the search placed (opening tokens and the newlines around them).
 */
export interface TraceIds {
  readonly ids: ReadonlyArray<number>;
  readonly sampled: ReadonlyArray<boolean>;
}

export const modelExpander = (
  policy: Policy,
  tok: TextTokenizer,
  options: ModelExpanderOptions,
): Expander<TraceIds> => {
  const ids = functionalTokenIds(tok);
  const stopIds = new Set([...ids.values(), tok.eosId]);
  const nl = tok.encode("\n");
  return {
    root: { ids: [], sampled: [] },
    expand: (state, _path, allowedTags, rng): ProposedStep<TraceIds>[] => {
      const prefix = [...options.promptIds, ...state.ids];
      const order = orderTags(policy.nextLogits(prefix), allowedTags, ids).slice(0, options.maxChildren);
      const prompts = order.map((tag) => [...prefix, ids.get(openTag(tag))!, ...nl]);
      const outs = policy.continue(
        prompts,
        (t) => stopIds.has(t),
        options.maxStepTokens,
        options.temperature,
        rng,
      );
      const steps: ProposedStep<TraceIds>[] = [];
      order.forEach((tag, i) => {
        const out = outs[i];
        // Well formed: content, a newline, then this tag's own closing token.
        if (out.length === 0 || out[out.length - 1] !== ids.get(closeTag(tag))) return;
        const text = tok.decode(out.slice(0, -1));
        if (!text.endsWith("\n")) return;
        const content = text.slice(0, -1);
        if (content.length === 0 || FUNCTIONAL_TOKENS.some((f) => content.includes(f))) return;
        const placed = (n: number) => new Array<boolean>(n).fill(false);
        steps.push({
          tag,
          content,
          state: {
            ids: [...state.ids, ids.get(openTag(tag))!, ...nl, ...out, ...nl],
            sampled: [
              ...state.sampled,
              ...placed(1 + nl.length),
              ...out.map(() => true),
              ...placed(nl.length),
            ],
          },
        });
      });
      return steps;
    },
    value: (_state, path) => {
      const last = path[path.length - 1];
      return last?.tag === "output" ? options.judge(last.content.trim()) : 0;
    },
  };
};

/** One rollout of the plain-sampling mode: the response as sampled, and what it says. */
export interface SampledTrace extends TraceIds {
  /** The response text (EOS not included). */
  readonly text: string;
  /** Whether the text is a complete trace under the grammar (ending in `<output>`) followed by EOS. */
  readonly valid: boolean;
  /** The `<output>` answer of a valid trace. */
  readonly answer?: string;
}

/**
 * RFTT's plain-sampling rollouts (no tree): the policy writes the whole response at `temperature` (1 in
 * RFTT) until EOS or `maxNewTokens`. Every token is sampled; the EOS, when written, ends `ids` (it is an
 * action the policy takes). A response that does not parse as a trace is returned with `valid` false (its
 * reward is 0).
 */
export const sampleTraces = (
  policy: Policy,
  tok: TextTokenizer,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  maxNewTokens: number,
  temperature: number,
  rng: Rng,
): SampledTrace[] =>
  policy.continue(prompts, (t) => t === tok.eosId, maxNewTokens, temperature, rng).map((out) => {
    const ended = out.length > 0 && out[out.length - 1] === tok.eosId;
    const text = tok.decode(ended ? out.slice(0, -1) : out);
    const parsed = parseTrace(text);
    const answer = parsed.ok && ended ? traceAnswer(parsed.segments) : undefined;
    return {
      ids: out,
      sampled: out.map(() => true),
      text,
      valid: answer !== undefined,
      ...(answer === undefined ? {} : { answer }),
    };
  });
