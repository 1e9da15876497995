/**
 * RFTT's test-time search (src/train/rftt_test_search.ts) with scripted policies: N rollouts per
 * problem, each a trace the grammar accepts; a rollout that reaches `<output>` carries its answer, one
 * that stops at the depth limit carries none; with no reward the rollouts spread over the root's
 * children (the policy's most probable tags first); and the vote is the most frequent answer.
 */
import { assert, assertEquals } from "./assert.ts";
import { parseTrace } from "../src/data/functional_tokens.ts";
import { majorityVote } from "../src/report/stats.ts";
import { type Policy } from "../src/train/rftt_model_expander.ts";
import { searchTraces, TEST_SEARCH_DEFAULTS } from "../src/train/rftt_test_search.ts";
import { Rng } from "../src/util/rng.ts";
import { grownArithTokenizer, scriptedPolicy } from "./rftt_test_helpers.ts";

const { tok, id } = await grownArithTokenizer();
const promptIds = tok.encode("What is 9 - 3?\n");

/**
 * Prefers next_step, then direct_answer, then output. The content of a step is scripted per tag; an
 * `<output>` step answers by how many `<direct_answer>` steps the trace holds so far ("6" after none,
 * "7" after one), so different branches vote differently.
 */
const scripted: Policy = scriptedPolicy(
  tok,
  { "<next_step>": 3, "<direct_answer>": 2, "<output>": 1 },
  (tag, prompt) => {
    const direct = prompt.filter((x) => x === id("<direct_answer>")).length;
    return tag === "<output>" ? (direct > 0 ? "7" : "6") : tag === "<next_step>" ? "9-3=6" : "so 6";
  },
);

Deno.test("test-time search: N rollouts, grammatical traces, answers only from <output>", () => {
  const traces = searchTraces(scripted, tok, promptIds, {
    ...TEST_SEARCH_DEFAULTS,
    rollouts: 8,
    maxDepth: 3,
  }, Rng.seeded(0));
  assertEquals(traces.length, 8);
  for (const t of traces) {
    const parsed = parseTrace(t.text);
    if (t.answer !== undefined) {
      assert(parsed.ok, t.text);
      assert(t.text.endsWith(`<output>\n${t.answer}\n</output>\n`), t.text);
    } else {
      // Stopped at the depth limit: three steps, none of them <output>.
      assertEquals((t.text.match(/<\/[a-z_]+>/g) ?? []).length, 3, t.text);
      assert(!t.text.includes("<output>"), t.text);
    }
  }
  // With every leaf worth 0 the first three rollouts visit the root's three children (the policy's most
  // probable allowed tags: next_step, then clarify and analysis in the table's order), one each.
  const rootTags = traces.map((t) => t.text.match(/^<([a-z_]+)>/)![1]);
  assertEquals(new Set(rootTags.slice(0, 3)), new Set(["next_step", "clarify", "analysis"]));
  assert(!rootTags.includes("subquestion"), rootTags.join());
  // Both answers occur, so the vote has something to decide; it picks the most frequent one.
  const answers = traces.map((t) => t.answer);
  const counts = new Map<string, number>();
  for (const a of answers) if (a !== undefined) counts.set(a, (counts.get(a) ?? 0) + 1);
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  assertEquals(top.map(([a]) => a).sort(), ["6", "7"], JSON.stringify(answers));
  if (top.length === 1 || top[0][1] > top[1][1]) assertEquals(majorityVote(answers), top[0][0]);
});

Deno.test("test-time search: deterministic for its seed; the first j rollouts are the search with j", () => {
  const run = (n: number, seed: number) =>
    searchTraces(
      scripted,
      tok,
      promptIds,
      { ...TEST_SEARCH_DEFAULTS, rollouts: n, maxDepth: 4 },
      Rng.seeded(seed),
    )
      .map((t) => t.text);
  const eight = run(8, 1);
  assertEquals(run(8, 1), eight);
  assertEquals(run(4, 1), eight.slice(0, 4));
});
