/**
 * RL rollouts (src/train/rl_rollouts.ts) with a scripted policy: functional-token MCTS rollouts are the
 * tree's root-to-leaf paths with the model's own token ids, EOS after `<output>`, the outcome from the
 * gold answer; the process reward puts each step's exact score on its closing token; plain sampled
 * rollouts are judged by the locator; functional-token counts are counted per rollout.
 */
import { assert, assertEquals } from "./assert.ts";
import { type Policy } from "../src/train/rftt_model_expander.ts";
import { parseArithPrompt } from "../src/train/rftt_arith.ts";
import { collectRollouts, type RolloutSettings } from "../src/train/rl_rollouts.ts";
import { Rng } from "../src/util/rng.ts";
import { grownArithTokenizer, scriptedPolicy } from "./rftt_test_helpers.ts";

const { tok } = await grownArithTokenizer();

/** Writes `scripts[tag]` after an opening tag (EOS otherwise); prefers next_step, then output. */
const scripted = (scripts: Record<string, string>): Policy =>
  scriptedPolicy(tok, { "<next_step>": 2, "<output>": 1 }, (tag) => scripts[tag]);

const prompt = "What is 9 - 3?";
const problem = { promptIds: tok.encode(`${prompt}\n`), gold: "6", arith: parseArithPrompt(prompt)! };
const MCTS: RolloutSettings = {
  mode: "mcts",
  traces: "functional",
  perPrompt: 4,
  maxNewTokens: 64,
  temperature: 1,
  stepTemperature: 0,
  maxStepTokens: 16,
  maxDepth: 3,
  exploration: 2,
  maxChildren: 5,
  processReward: false,
  locator: { kind: "answer-tags" },
};

Deno.test("rl rollouts (mcts): paths as written, EOS after <output>, outcome from the gold answer", () => {
  const rollouts = collectRollouts(
    scripted({ "<next_step>": "9-3=6", "<output>": "6" }),
    tok,
    [problem],
    MCTS,
    Rng.seeded(0),
  );
  assertEquals(rollouts.length, 4);
  const done = rollouts.filter((r) => r.reachedOutput);
  assert(done.length > 0 && done.length < 4, String(done.length));
  for (const r of rollouts) {
    assertEquals(r.prompt, problem.promptIds);
    assertEquals(r.group, 0);
    if (r.reachedOutput) {
      assertEquals(r.response.at(-1), tok.eosId);
      assertEquals(tok.decode(r.response.slice(0, -1)), r.text);
      assert(r.text.endsWith("<output>\n6\n</output>\n"), r.text);
      assertEquals(r.outcome, 1);
      assertEquals(r.tags.output, 1);
      assertEquals(r.tags.next_step, (r.text.match(/<next_step>/g) ?? []).length);
    } else {
      // The depth limit without <output>: worth 0, no EOS.
      assertEquals(r.outcome, 0);
      assert(!r.response.includes(tok.eosId));
    }
    assertEquals(r.steps, undefined);
  }
});

Deno.test("rl rollouts (mcts): the process reward scores each step on its closing token", () => {
  const run = (scripts: Record<string, string>) =>
    collectRollouts(scripted(scripts), tok, [problem], { ...MCTS, processReward: true }, Rng.seeded(0))
      .find((r) => r.reachedOutput && r.tags.next_step === 1)!;
  const right = run({ "<next_step>": "9-3=6", "<output>": "6" });
  assertEquals(right.steps!.scores, [1, 1]);
  assertEquals(right.steps!.positions.map((p) => tok.decode([right.response[p]])), [
    "</next_step>",
    "</output>",
  ]);
  assertEquals(right.reward, 1);
  const wrong = run({ "<next_step>": "9-3=7", "<output>": "7" });
  assertEquals(wrong.steps!.scores, [0, 0]);
  assertEquals([wrong.outcome, wrong.reward], [0, 0]);
  // A right computation but a wrong final answer: 0.6 * 0 + 0.4 * mean(1, 0).
  const half = run({ "<next_step>": "9-3=6", "<output>": "5" });
  assertEquals(half.steps!.scores, [1, 0]);
  assert(Math.abs(half.reward - 0.2) < 1e-12, String(half.reward));
});

Deno.test("rl rollouts (sampling, plain): the locator's answer is judged; k samples per prompt, grouped", () => {
  const texts = [
    "<Thinking>9-3=6</Thinking><Answer>6</Answer>",
    "<Thinking>9-3=5</Thinking><Answer>5</Answer>",
    "no answer",
  ];
  let call = 0;
  const policy: Policy = {
    nextLogits: () => new Float32Array(tok.vocabSize),
    continue: (prompts) => prompts.map(() => [...tok.encode(texts[call++ % 3]), tok.eosId]),
  };
  const rollouts = collectRollouts(policy, tok, [problem, { ...problem, gold: "5" }], {
    ...MCTS,
    mode: "sampling",
    traces: "plain",
    perPrompt: 3,
  }, Rng.seeded(0));
  assertEquals(rollouts.map((r) => r.group), [0, 0, 0, 1, 1, 1]);
  assertEquals(rollouts.map((r) => r.outcome), [1, 0, 0, 0, 1, 0]);
  assertEquals(rollouts.map((r) => r.reachedOutput), [true, true, false, true, true, false]);
  assertEquals(rollouts[0].tags, {});
});

Deno.test("rl rollouts (mcts): maxChildren keeps only the policy's most probable tags", () => {
  // The policy prefers <next_step> to <output>: with one child per node no path ever reaches <output>.
  const one = collectRollouts(scripted({ "<next_step>": "9-3=6", "<output>": "6" }), tok, [problem], {
    ...MCTS,
    maxChildren: 1,
  }, Rng.seeded(0));
  assert(one.every((r) => !r.reachedOutput && r.outcome === 0 && r.tags.next_step === MCTS.maxDepth));
});
