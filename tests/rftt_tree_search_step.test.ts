/**
 * The treeSearch step on arithmetic problems: every trace it writes obeys the grammar and ends in the exact
 * answer, the per-problem limits hold, the `<output>` answer is where an answer-tags locator finds it, the
 * output is deterministic, and a prompt the arithmetic expander cannot read is an InvalidRow naming
 * file:line and the field.
 */
import { Effect, Exit } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { parseTrace, traceAnswer } from "../src/data/functional_tokens.ts";
import { locateKey } from "../src/data/locate.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { arithAnswer, parseArithPrompt } from "../src/train/rftt_arith.ts";
import { type TraceRecord, TREE_SEARCH_DEFAULTS, treeSearchStep } from "../src/steps/tree_search.ts";

const fixture = new URL("../fixtures/arith/train.jsonl", import.meta.url).pathname;
const rows = Deno.readTextFileSync(fixture).trim().split("\n").slice(0, 30);

const run = async (data: string, out: string) => {
  // The runner creates the step's working directory.
  await Deno.mkdir(out, { recursive: true });
  return await Effect.runPromiseExit(
    Effect.scoped(treeSearchStep.run({ ...TREE_SEARCH_DEFAULTS, format: "tags" }, { data }, {
      dir: out,
      resumed: false,
      node: "search",
      reporter: silentReporter(),
      backend: "none",
    })),
  );
};

Deno.test("treeSearch step: grammar-valid traces with exact answers, within the per-problem limits", async () => {
  const tmp = await Deno.makeTempDir();
  await Deno.writeTextFile(`${tmp}/data.jsonl`, rows.join("\n") + "\n");
  const first = await run(`${tmp}/data.jsonl`, `${tmp}/a`);
  assert(Exit.isSuccess(first), String(first));
  const text = await Deno.readTextFile(`${tmp}/a/traces.jsonl`);
  const traces = text.trim().split("\n").map((l) => JSON.parse(l) as TraceRecord);
  const byPrompt = new Map<string, TraceRecord[]>();
  for (const t of traces) {
    const parsed = parseTrace(t.response);
    assert(parsed.ok, t.response);
    const answer = `${arithAnswer(parseArithPrompt(t.prompt)!)}`;
    assertEquals(traceAnswer(parsed.segments), answer);
    const span = locateKey(t.response, { kind: "answer-tags", open: "<output>\n", close: "\n</output>" })!;
    assertEquals(t.response.slice(span.start, span.end), answer);
    byPrompt.set(t.prompt, [...byPrompt.get(t.prompt) ?? [], t]);
  }
  for (const ts of byPrompt.values()) {
    assert(ts.filter((t) => t.kind === "correct").length <= TREE_SEARCH_DEFAULTS.correctPerProblem);
    assert(ts.filter((t) => t.kind === "merge").length <= TREE_SEARCH_DEFAULTS.mergesPerProblem);
  }
  const report = JSON.parse(await Deno.readTextFile(`${tmp}/a/report.json`));
  assertEquals(report.problems, 30);
  assertEquals(report.traces, traces.length);
  assertEquals(report.correct + report.merges, traces.length);
  assertEquals(report.solved, byPrompt.size);
  assert(report.merges > 0 && report.solved === 30, JSON.stringify(report));
  // Deterministic: a second run writes the same bytes.
  assert(Exit.isSuccess(await run(`${tmp}/data.jsonl`, `${tmp}/b`)));
  assertEquals(await Deno.readTextFile(`${tmp}/b/traces.jsonl`), text);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("treeSearch step: a prompt the arithmetic expander cannot read names file:line and field", async () => {
  const tmp = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${tmp}/data.jsonl`,
    [rows[0], JSON.stringify({ prompt: "Name a prime.", response: "<Answer>7</Answer>" })].join("\n") + "\n",
  );
  const exit = await run(`${tmp}/data.jsonl`, `${tmp}/a`);
  assert(Exit.isFailure(exit) && exit.cause._tag === "Fail");
  const e = exit.cause.error;
  assertEquals(e._tag, "InvalidRow");
  if (e._tag === "InvalidRow") assertEquals([e.file, e.line, e.field], [`${tmp}/data.jsonl`, 2, "prompt"]);
  await Deno.remove(tmp, { recursive: true });
});
