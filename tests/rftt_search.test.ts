/**
 * RFTT's tree search: selection follows UCT on a constructed tree, values back up as specified (a small
 * tree worked through by hand, and Q/N bookkeeping invariants on random trees), the depth limit is worth
 * 0, every generated trace obeys the grammar, and branch merges hold the wrong step, <verify>, <refine>
 * and the correct continuation in that order.
 */
import fc from "fast-check";
import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";
import { type FunctionalTag, parseTrace, sequenceProblem } from "../src/data/functional_tokens.ts";
import {
  type Expander,
  search,
  type SearchNode,
  segmentsOf,
  selectChild,
  sftTraces,
  uct,
} from "../src/train/rftt_search.ts";
import { arithAnswer, arithExpander, arithStepScores, parseArithPrompt } from "../src/train/rftt_arith.ts";
import { Rng } from "../src/util/rng.ts";

const node = (id: number, visits: number, total: number, parent?: SearchNode<null>): SearchNode<null> => ({
  id,
  parent,
  step: { tag: "next_step", content: `${id}`, state: null },
  depth: parent ? parent.depth + 1 : 0,
  children: undefined,
  visits,
  total,
});

Deno.test("rftt search: selection follows UCT = Q/N + 2 sqrt(ln N_parent / N), unvisited first", () => {
  const parent = node(0, 10, 5);
  // By hand: Q/N + 2 sqrt(ln 10 / N).
  const kids = [node(1, 4, 3, parent), node(2, 1, 0, parent), node(3, 5, 2, parent)];
  const byHand = [
    3 / 4 + 2 * Math.sqrt(Math.log(10) / 4),
    0 + 2 * Math.sqrt(Math.log(10)),
    2 / 5 + 2 * Math.sqrt(Math.log(10) / 5),
  ];
  kids.forEach((k, i) => assertAlmostEquals(uct(10, k, 2), byHand[i], 1e-12));
  parent.children = kids;
  assertEquals(selectChild(parent, 2).id, 2); // 3.03 beats 2.27 and 1.76
  // Exploitation wins with a small c: 3/4 is the best mean.
  assertEquals(selectChild(parent, 0.1).id, 1);
  // An unvisited child is taken whatever the others' scores.
  parent.children = [...kids, node(4, 0, 0, parent), node(5, 0, 0, parent)];
  assertEquals(selectChild(parent, 2).id, 4);
});

/** root -> next_step "a" -> output "good" (worth 1) | output "bad" (worth 0). */
const twoLeaves: Expander<string> = {
  root: "root",
  expand: (state) =>
    state === "root"
      ? [{ tag: "next_step", content: "a", state: "a" }]
      : state === "a"
      ? [{ tag: "output", content: "good", state: "good" }, { tag: "output", content: "bad", state: "bad" }]
      : [],
  value: (state) => state === "good" ? 1 : 0,
};

Deno.test("rftt search: a small tree worked through by hand (selection, backpropagation)", () => {
  const tree = search(twoLeaves, { rollouts: 6, maxDepth: 5, exploration: 2 }, Rng.seeded(3));
  const leaves = tree.rollouts.map((r) => r.path[r.path.length - 1].step!.content);
  // Rollout 1 simulates to a random leaf, rollout 2 takes the unvisited one; then UCT at node a:
  // 3: good 1 + 2 sqrt(ln 2) vs bad 0 + 2 sqrt(ln 2) -> good;
  // 4: good 1 + 2 sqrt(ln 3 / 2) = 2.48 vs bad 2 sqrt(ln 3) = 2.10 -> good;
  // 5: good 1 + 2 sqrt(ln 4 / 3) = 2.360 vs bad 2 sqrt(ln 4) = 2.355 -> good;
  // 6: good 1 + 2 sqrt(ln 5 / 4) = 2.27 vs bad 2 sqrt(ln 5) = 2.54 -> bad.
  assertEquals(new Set(leaves.slice(0, 2)), new Set(["good", "bad"]));
  assertEquals(leaves.slice(2), ["good", "good", "good", "bad"]);
  assertEquals(tree.rollouts.map((r) => r.value), leaves.map((l) => l === "good" ? 1 : 0));
  const a = tree.root.children![0];
  const [good, bad] = a.children!;
  assertEquals([tree.root.visits, tree.root.total], [6, 4]);
  assertEquals([a.visits, a.total], [6, 4]);
  assertEquals([good.visits, good.total], [4, 4]);
  assertEquals([bad.visits, bad.total], [2, 0]);
});

Deno.test("rftt search: a path that reaches the depth limit without <output> is worth 0", () => {
  const endless: Expander<number> = {
    root: 0,
    expand: (s) => [{ tag: "next_step", content: `step ${s}`, state: s + 1 }],
    value: () => 1,
  };
  const tree = search(endless, { rollouts: 4, maxDepth: 3, exploration: 2 }, Rng.seeded(1));
  for (const r of tree.rollouts) {
    assertEquals(r.value, 0);
    assertEquals(r.path.length, 3);
  }
  assertEquals([tree.root.visits, tree.root.total], [4, 0]);
});

Deno.test("rftt search: an expander proposing a tag the grammar forbids is a bug, refused", () => {
  const bad: Expander<null> = {
    root: null,
    expand: () => [{ tag: "output", content: "1", state: null }],
    value: () => 1,
  };
  let threw = false;
  try {
    search(bad, { rollouts: 1, maxDepth: 3, exploration: 2 }, Rng.seeded(1));
  } catch (e) {
    threw = e instanceof RangeError && e.message.includes("forbids");
  }
  assert(threw);
});

const problem = fc.tuple(
  fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 2, maxLength: 4 }),
  fc.array(fc.constantFrom<"+" | "-">("+", "-"), { minLength: 3, maxLength: 3 }),
).map(([operands, ops]) => ({ operands, ops: ops.slice(0, operands.length - 1) }))
  // As in fixtures/arith: no intermediate result is negative.
  .filter((p) =>
    p.ops.every((_, k) =>
      arithAnswer({ operands: p.operands.slice(0, k + 2), ops: p.ops.slice(0, k + 1) }) >= 0
    )
  );

const visitAll = <S>(n: SearchNode<S>, f: (n: SearchNode<S>) => void) => {
  f(n);
  for (const c of n.children ?? []) visitAll(c, f);
};

Deno.test("rftt search: on random problems every trace obeys the grammar and Q/N add up", () => {
  fc.assert(
    fc.property(
      problem,
      fc.integer({ min: 0, max: 2 ** 31 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 2, max: 9 }),
      (p, seed, wrongRate, rollouts, maxDepth) => {
        const tree = search(
          arithExpander(p, { wrongRate }),
          { rollouts, maxDepth, exploration: 2 },
          Rng.seeded(seed),
        );
        assertEquals(tree.rollouts.length, rollouts);
        for (const r of tree.rollouts) {
          const tags = segmentsOf(r.path).map((s) => s.tag);
          const problemAt = sequenceProblem(tags);
          if (tags[tags.length - 1] === "output") assertEquals(problemAt, undefined);
          else {
            // Only the missing <output> may be wrong with a path cut by the depth limit.
            assertEquals(problemAt?.segment, tags.length);
            assertEquals(tags.length, maxDepth);
            assertEquals(r.value, 0);
          }
          assert(r.path.length <= maxDepth);
        }
        // Backpropagation: a node's N and Q are the rollouts through it; the root's are all of them.
        assertEquals(tree.root.visits, rollouts);
        assertEquals(tree.root.total, tree.rollouts.reduce((s, r) => s + r.value, 0));
        visitAll(tree.root, (n) => {
          const through = tree.rollouts.filter((r) => n.step === undefined || r.path.includes(n));
          assertEquals(n.visits, through.length);
          assertEquals(n.total, through.reduce((s, r) => s + r.value, 0));
        });
        for (const t of sftTraces(tree)) {
          const parsed = parseTrace(t.text);
          assert(parsed.ok, parsed.ok ? "" : `${parsed.problem.reason}\n${t.text}`);
          assertEquals(parsed.segments, t.segments);
          assertEquals(t.segments[t.segments.length - 1].content, `${arithAnswer(p)}`);
        }
      },
    ),
    { numRuns: 150 },
  );
});

const fixtureProblems = Deno.readTextFileSync(new URL("../fixtures/arith/train.jsonl", import.meta.url))
  .trim().split("\n").slice(0, 40).map((l) => parseArithPrompt(JSON.parse(l).prompt)!);

Deno.test("rftt search: branch merges hold the wrong step, <verify>, <refine>, the correct continuation", () => {
  let merges = 0, correct = 0;
  fixtureProblems.forEach((p, i) => {
    assert(p !== undefined);
    const tree = search(
      arithExpander(p, { wrongRate: 0.5 }),
      { rollouts: 24, maxDepth: 8, exploration: 2 },
      Rng.seeded(i),
    );
    for (const t of sftTraces(tree)) {
      const scores = arithStepScores(p, t.segments);
      const tags: FunctionalTag[] = t.segments.map((s) => s.tag);
      assertEquals(scores[scores.length - 1], 1, t.text);
      if (t.kind === "correct") {
        correct++;
        continue;
      }
      merges++;
      // The first wrong step is followed by <verify> naming it, then <refine> with a right computation.
      const d = scores.indexOf(0);
      assert(d >= 0, `a merge without a wrong step:\n${t.text}`);
      const wrongStep = t.segments[d];
      assert(wrongStep.tag === "next_step" || wrongStep.tag === "direct_answer");
      assertEquals(tags[d + 1], "verify");
      assert(
        t.segments[d + 1].content.startsWith(`${wrongStep.content} is wrong`),
        t.segments[d + 1].content,
      );
      assertEquals(tags[d + 2], "refine");
      assertEquals(scores[d + 2], 1);
      // The refined result is the expression's true value, and the rest of the trace is all right.
      const [expr] = wrongStep.content.split("=");
      assertEquals(t.segments[d + 2].content.split("=")[0], expr);
      // The correct continuation may correct mistakes of its own; each is then verified and refined.
      scores.forEach((s, k) => {
        if (s === 0) assertEquals([tags[k + 1], tags[k + 2], scores[k + 2]], ["verify", "refine", 1], t.text);
      });
      assertEquals(tags[tags.length - 1], "output");
    }
  });
  // With these settings every fixture problem yields material of both kinds overall.
  assert(correct >= fixtureProblems.length, `${correct} correct traces`);
  assert(merges >= 10, `only ${merges} merges`);
});

Deno.test("rftt search: with wrongRate 0 nothing is ever wrong and every finished path is correct", () => {
  for (const [i, p] of fixtureProblems.slice(0, 10).entries()) {
    const tree = search(
      arithExpander(p, { wrongRate: 0 }),
      { rollouts: 12, maxDepth: 10, exploration: 2 },
      Rng.seeded(i),
    );
    for (const r of tree.rollouts) {
      if (r.path[r.path.length - 1].step!.tag === "output") assertEquals(r.value, 1);
    }
    assertEquals(sftTraces(tree).filter((t) => t.kind === "merge").length, 0);
  }
});
