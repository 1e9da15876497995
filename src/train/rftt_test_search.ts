/**
 * RFTT's test-time search (issue 10's `--rollouts N`): functional-token MCTS at inference, with a
 * majority vote over the `<output>` answers of the tree's rollouts.
 *
 * The tree is the one RL's rollouts grow (./rftt_search.ts with the model expander of
 * ./rftt_model_expander.ts): at a node the allowed tags are ordered by the policy's probability of each
 * opening token, the `maxChildren` most probable are written (content sampled at a low temperature until
 * the tag's closing token), and UCT picks the child to descend into. At inference there is no gold answer,
 * so every leaf is worth 0 and UCT reduces to its exploration term: the rollouts spread over the most
 * probable branches (unvisited children first, then the least visited), which is what the vote needs:
 * different traces, each the policy's own. A rollout that ends at the depth limit or at a node with no
 * well-formed child gives no answer (it does not vote).
 *
 * The vote is this project's choice (the released code has no test-time search; issue 10 asks for it).
 */
import type { TextTokenizer } from "../data/tokenizer.ts";
import type { Rng } from "../util/rng.ts";
import { modelExpander, type Policy } from "./rftt_model_expander.ts";
import { search, segmentsOf } from "./rftt_search.ts";
import { renderTrace } from "../data/functional_tokens.ts";

/** The search's shape at inference. */
export interface TestSearchSettings {
  /** Rollouts per problem (N): the votes. */
  readonly rollouts: number;
  /** Temperature of each step's content. */
  readonly stepTemperature: number;
  /** Most tokens of one step's content, its closing token included. */
  readonly maxStepTokens: number;
  /** Most steps in a trace. */
  readonly maxDepth: number;
  /** Most children per node (the policy's most probable allowed tags). */
  readonly maxChildren: number;
  /** UCT's exploration weight. */
  readonly exploration: number;
}

/**
 * RL's rollout shape (pipelines/rftt.ts and the rl step's defaults: step temperature 0.3, 36 tokens a
 * step, 6 steps, 3 children, c = 2), so that the search at inference explores as training did.
 */
export const TEST_SEARCH_DEFAULTS: Omit<TestSearchSettings, "rollouts"> = {
  stepTemperature: 0.3,
  maxStepTokens: 36,
  maxDepth: 6,
  maxChildren: 3,
  exploration: 2,
};

/** One rollout of the search at inference. */
export interface SearchedTrace {
  /** The trace as text (its segments rendered). */
  readonly text: string;
  /** The `<output>` content when the rollout reached `<output>`, trimmed as the judge reads it. */
  readonly answer?: string;
}

/** The tree's rollouts for one prompt, in the order run (the first j are the search with j rollouts). */
export const searchTraces = (
  policy: Policy,
  tok: TextTokenizer,
  promptIds: ReadonlyArray<number>,
  settings: TestSearchSettings,
  rng: Rng,
): SearchedTrace[] => {
  const expander = modelExpander(policy, tok, {
    promptIds,
    maxStepTokens: settings.maxStepTokens,
    temperature: settings.stepTemperature,
    // No gold answer at inference: every leaf is worth 0 (see the file's comment).
    judge: () => 0,
    maxChildren: settings.maxChildren,
  });
  const tree = search(expander, {
    rollouts: settings.rollouts,
    maxDepth: settings.maxDepth,
    exploration: settings.exploration,
  }, rng);
  return tree.rollouts.map((r) => {
    const leaf = r.path[r.path.length - 1];
    const text = renderTrace(segmentsOf(r.path));
    return leaf?.step?.tag === "output" ? { text, answer: leaf.step.content.trim() } : { text };
  });
};
