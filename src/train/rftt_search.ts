/**
 * Monte-Carlo tree search over reasoning steps, RFTT's warm-up data generator (arXiv 2502.13389; the
 * authors' gen_data/src/mcts_backbone.py). A node is a trace prefix; an edge is one step: a functional tag
 * plus its content. Which tags may follow which is the grammar of ../data/functional_tokens.ts.
 *
 * One rollout:
 *   1. select: from the root, while the node is expanded: an unvisited child is taken first (in the
 *      expander's order), otherwise the child with the largest UCT = Q/N + c * sqrt(ln N_parent / N)
 *      (c = 2; the first on ties) and the descent continues;
 *   2. expand the selected node (all its children at once, from the pluggable expander);
 *   3. simulate: walk down through random children (seeded), expanding as needed, until a leaf: an
 *      `<output>` step (worth 1 if its answer is correct, else 0), a step at the depth limit that is not
 *      `<output>` (worth 0), or a node the expander gives no children (worth 0);
 *   4. backpropagate: the leaf's value is added to Q and 1 to N of every node on the path, root included,
 *      without discount.
 * The simulated nodes stay in the tree (as in the authors' code), so every rollout is one root-to-leaf path.
 *
 * Differences from the authors' code: an unvisited child is the first one in the expander's order rather
 * than a random one (RL rollouts order children by the policy's probability of each functional token), the
 * exploration weight is constant (their default scheduler), and no node type is excluded from selection.
 */
import {
  allowed,
  ALLOWED_AFTER,
  type FunctionalTag,
  renderTrace,
  ROOT,
  type Segment,
  type TraceState,
} from "../data/functional_tokens.ts";
import type { Rng } from "../util/rng.ts";

/** A step proposed by an expander, with the expander's own state after it. */
export interface ProposedStep<S> {
  readonly tag: FunctionalTag;
  readonly content: string;
  readonly state: S;
  /**
   * False for a step the expander knows to be wrong (the programmatic expander's deliberate mistakes);
   * undefined when it cannot tell (the model expander).
   */
  readonly correct?: boolean;
  /** For a wrong step: what is wrong with it, in words (what a `<verify>` step says about it). */
  readonly error?: string;
}

/**
 * How the search grows the tree. `expand` proposes the children of a node: steps whose tags are among
 * `allowedTags` (in the order they should be tried); `value` scores an `<output>` step: 1 when its answer
 * is correct, 0 otherwise.
 */
export interface Expander<S> {
  readonly root: S;
  readonly expand: (
    state: S,
    path: ReadonlyArray<Segment>,
    allowedTags: ReadonlyArray<FunctionalTag>,
    rng: Rng,
  ) => ReadonlyArray<ProposedStep<S>>;
  readonly value: (state: S, path: ReadonlyArray<Segment>) => number;
}

export interface SearchNode<S> {
  readonly id: number;
  readonly parent: SearchNode<S> | undefined;
  /** The step leading here; undefined at the root. */
  readonly step: ProposedStep<S> | undefined;
  /** Steps from the root. */
  readonly depth: number;
  /** Undefined until the node is expanded. */
  children: SearchNode<S>[] | undefined;
  /** N: rollouts through this node. */
  visits: number;
  /** Q: sum of the values of those rollouts. */
  total: number;
}

export interface SearchConfig {
  /** Rollouts per tree. */
  readonly rollouts: number;
  /** Most steps in a trace; a path reaching it without `<output>` is worth 0. */
  readonly maxDepth: number;
  /** UCT's exploration weight c (2 in RFTT). */
  readonly exploration: number;
}

export const SEARCH_DEFAULTS: SearchConfig = { rollouts: 16, maxDepth: 10, exploration: 2 };

export interface Rollout<S> {
  /** Root to leaf, root excluded. */
  readonly path: ReadonlyArray<SearchNode<S>>;
  readonly value: number;
}

export interface SearchTree<S> {
  readonly root: SearchNode<S>;
  readonly rollouts: ReadonlyArray<Rollout<S>>;
}

/** The UCT score of `child` under `parent`; Infinity for an unvisited child. */
export const uct = (parentVisits: number, child: { visits: number; total: number }, c: number): number =>
  child.visits === 0
    ? Infinity
    : child.total / child.visits + c * Math.sqrt(Math.log(parentVisits) / child.visits);

/** The child selection picks: the first unvisited child, else the first with the largest UCT. */
export const selectChild = <S>(node: SearchNode<S>, c: number): SearchNode<S> => {
  const children = node.children ?? [];
  if (children.length === 0) throw new RangeError(`node ${node.id} has no children to select from`);
  let best = children[0], bestScore = -Infinity;
  for (const child of children) {
    const score = uct(node.visits, child, c);
    if (score === Infinity) return child;
    if (score > bestScore) [best, bestScore] = [child, score];
  }
  return best;
};

/** The steps of the path from the root to `node`. */
export const pathTo = <S>(node: SearchNode<S>): SearchNode<S>[] => {
  const out: SearchNode<S>[] = [];
  for (let n: SearchNode<S> | undefined = node; n?.step !== undefined; n = n.parent) out.unshift(n);
  return out;
};

export const segmentsOf = <S>(path: ReadonlyArray<SearchNode<S>>): Segment[] =>
  path.map((n) => ({ tag: n.step!.tag, content: n.step!.content }));

const stateAt = <S>(node: SearchNode<S>): TraceState => node.step?.tag ?? ROOT;

/** Adds `value` to Q and 1 to N of `leaf` and each ancestor, root included. */
export const backpropagate = <S>(leaf: SearchNode<S>, value: number): void => {
  for (let n: SearchNode<S> | undefined = leaf; n !== undefined; n = n.parent) {
    n.visits += 1;
    n.total += value;
  }
};

/**
 * Monte-Carlo tree search for one problem. Deterministic given the expander and the rng's state. Throws a
 * RangeError when the expander proposes a tag the grammar does not allow (a bug in the expander).
 */
export const search = <S>(expander: Expander<S>, config: SearchConfig, rng: Rng): SearchTree<S> => {
  let nextId = 0;
  const root: SearchNode<S> = {
    id: nextId++,
    parent: undefined,
    step: undefined,
    depth: 0,
    children: undefined,
    visits: 0,
    total: 0,
  };
  const isTerminal = (n: SearchNode<S>) => n.step?.tag === "output" || n.depth >= config.maxDepth;
  const expand = (n: SearchNode<S>) => {
    const state = stateAt(n);
    const tags = ALLOWED_AFTER[state];
    const proposed = expander.expand(n.step?.state ?? expander.root, segmentsOf(pathTo(n)), tags, rng);
    n.children = proposed.map((step) => {
      if (!allowed(state, step.tag)) {
        throw new RangeError(`the expander proposed <${step.tag}> after ${state}, which the grammar forbids`);
      }
      return { id: nextId++, parent: n, step, depth: n.depth + 1, children: undefined, visits: 0, total: 0 };
    });
  };
  const leafValue = (n: SearchNode<S>) =>
    n.step?.tag === "output" ? expander.value(n.step.state, segmentsOf(pathTo(n))) : 0;

  const rollouts: Rollout<S>[] = [];
  for (let r = 0; r < config.rollouts; r++) {
    let node = root;
    // Selection: descend while the node has been expanded; stop at the first unvisited child.
    while (!isTerminal(node) && node.children !== undefined && node.children.length > 0) {
      node = selectChild(node, config.exploration);
      if (node.visits === 0) break;
    }
    // Expansion and simulation.
    while (!isTerminal(node)) {
      if (node.children === undefined) expand(node);
      const children = node.children!;
      if (children.length === 0) break;
      node = children[rng.int(children.length)];
    }
    const value = isTerminal(node) ? leafValue(node) : 0;
    backpropagate(node, value);
    rollouts.push({ path: pathTo(node), value });
  }
  return { root, rollouts };
};

// -----------------------------------------------------------------------------------------------------
// Warm-up SFT data from a tree

export interface SftTrace {
  readonly kind: "correct" | "merge";
  readonly segments: ReadonlyArray<Segment>;
  readonly text: string;
}

/**
 * The `<verify>` content for a wrong step: the expander's description of the mistake, or, without one, a
 * statement that the step is wrong and what the correct step says.
 */
const critique = <S>(wrong: ProposedStep<S>, right: ProposedStep<S>): string =>
  wrong.error ?? `${wrong.content} is wrong; it should be: ${right.content}`;

/**
 * The warm-up traces of a tree: every distinct correct path (value 1), and a branch merge for each wrong
 * step that has a correct sibling with the same tag on a correct path: the shared prefix, the wrong step,
 * a `<verify>` step naming the mistake, a `<refine>` step holding the correct sibling's content, then the
 * rest of the correct path up to its `<output>`. A merge whose tags the grammar would not allow is skipped.
 */
export const sftTraces = <S>(tree: SearchTree<S>): SftTrace[] => {
  const out: SftTrace[] = [];
  const correct = new Map<number, ReadonlyArray<SearchNode<S>>>();
  for (const r of tree.rollouts) if (r.value === 1) correct.set(r.path[r.path.length - 1].id, r.path);
  for (const path of correct.values()) {
    const segments = segmentsOf(path);
    out.push({ kind: "correct", segments, text: renderTrace(segments) });
  }
  const merged = new Set<string>();
  for (const r of tree.rollouts) {
    const d = r.path.findIndex((n) => n.step!.correct === false);
    if (d < 0) continue;
    const wrong = r.path[d];
    for (const good of correct.values()) {
      const sibling = good[d];
      if (
        sibling === undefined || sibling.parent !== wrong.parent || sibling.step!.tag !== wrong.step!.tag ||
        sibling.step!.correct === false || good.slice(0, d + 1).some((n) => n.step!.correct === false)
      ) continue;
      const key = `${wrong.id}:${good[good.length - 1].id}`;
      if (merged.has(key)) continue;
      merged.add(key);
      const segments: Segment[] = [
        ...segmentsOf(r.path.slice(0, d + 1)),
        { tag: "verify", content: critique(wrong.step!, sibling.step!) },
        { tag: "refine", content: sibling.step!.content },
        ...segmentsOf(good.slice(d + 1)),
      ];
      if (!segments.every((s, i) => allowed(i === 0 ? ROOT : segments[i - 1].tag, s.tag))) continue;
      out.push({ kind: "merge", segments, text: renderTrace(segments) });
      break;
    }
  }
  return out;
};
