/**
 * The treeSearch step on arithmetic problems: every trace it writes obeys the grammar and ends in the exact
 * answer, the per-problem limits hold, the `<output>` answer is where an answer-tags locator finds it, the
 * output is deterministic, and a prompt the arithmetic expander cannot read is an InvalidRow naming
 * file:line and the field. Its records go through tokenise (the existing SFT data path) with the
 * grown tokenizer.
 */
import { Effect, Exit } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { FUNCTIONAL_TOKENS, parseTrace, traceAnswer } from "../src/data/functional_tokens.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { growTokenizer } from "../src/data/tokenizer_grow.ts";
import type { TokenRecord } from "../src/data/records.ts";
import { type PipelineNode, validate } from "../src/engine/pipeline.ts";
import { runPipeline } from "../src/engine/runner.ts";
import { ArtifactStore } from "../src/engine/store.ts";
import type { AnyStep } from "../src/engine/step.ts";
import { describeError } from "../src/errors.ts";
import { useBackend } from "../src/backend/backend.ts";
import { tokeniseStep } from "../src/steps/tokenise.ts";
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
  const text = await Deno.readTextFile(`${tmp}/a/located.jsonl`);
  const traces = text.trim().split("\n").map((l) => JSON.parse(l) as TraceRecord);
  const byPrompt = new Map<string, TraceRecord[]>();
  for (const t of traces) {
    const parsed = parseTrace(t.response);
    assert(parsed.ok, t.response);
    const answer = `${arithAnswer(parseArithPrompt(t.prompt)!)}`;
    assertEquals(traceAnswer(parsed.segments), answer);
    // The key is where an answer-tags locator for <output> finds it; the answer part starts at <output>.
    const span = locateKey(t.response, { kind: "answer-tags", open: "<output>\n", close: "\n</output>" })!;
    assertEquals(t.key, span);
    assertEquals(t.answer, answer);
    assertEquals(t.response.slice(t.answer_start), `<output>\n${answer}\n</output>\n`);
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
  assertEquals(await Deno.readTextFile(`${tmp}/b/located.jsonl`), text);
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

Deno.test("treeSearch step: its records go through tokenise with the grown tokenizer", async () => {
  const tmp = await Deno.makeTempDir();
  await Deno.writeTextFile(`${tmp}/data.jsonl`, rows.slice(0, 10).join("\n") + "\n");
  const grown = await Effect.runPromise(
    growTokenizer(new URL("../fixtures/arith/tokenizer.json", import.meta.url).pathname, FUNCTIONAL_TOKENS),
  );
  await Deno.mkdir(`${tmp}/tok`);
  for (const [name, text] of Object.entries(grown.files)) {
    await Deno.writeTextFile(`${tmp}/tok/${name}`, text);
  }
  const step = (name: string, s: AnyStep, config: unknown, inputs: Record<string, string>): PipelineNode => ({
    kind: "step",
    name,
    step: s,
    config,
    inputs,
  });
  const pipeline = validate({
    name: "rftt-warmup-data",
    description: "",
    nodes: [
      { kind: "source", name: "problems", path: `${tmp}/data.jsonl` },
      { kind: "source", name: "tokenizer", path: `${tmp}/tok/tokenizer.json` },
      step("search", treeSearchStep, { ...TREE_SEARCH_DEFAULTS, format: "tags" }, { data: "problems" }),
      step("tokens", tokeniseStep, { template: "{prompt}\n", maxLength: 256 }, {
        examples: "search",
        tokenizer: "tokenizer",
      }),
    ],
  });
  const backend = await Effect.runPromise(useBackend("cpu"));
  const exit = await Effect.runPromiseExit(runPipeline(pipeline, {
    store: new ArtifactStore(`${tmp}/artifacts`),
    reporter: silentReporter(),
    backend,
  }));
  if (Exit.isFailure(exit)) {
    const e = exit.cause._tag === "Fail" ? exit.cause.error : undefined;
    throw new Error(e?._tag === "StepFailed" ? `${e.node}: ${describeError(e.error)}` : String(exit));
  }
  const result = exit.value;
  const tok = await Effect.runPromise(loadTokenizer(`${tmp}/tok/tokenizer.json`));
  const records = (await Deno.readTextFile(`${result.outputs.get("tokens")}/tokens.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l) as TokenRecord);
  assert(records.length >= 10);
  for (const r of records) {
    const response = r.input_ids.slice(r.prompt_length);
    assertEquals(response[response.length - 1], tok.eosId);
    // The response starts with an opening functional token and holds </output> once, as one id each.
    assert(grown.ids.includes(response[0]));
    assertEquals(response.filter((id) => id === grown.ids[15]).length, 1);
    assertEquals(tok.decode(r.input_ids.slice(r.key.start, r.key.end)), r.answer);
  }
  await Deno.remove(tmp, { recursive: true });
});
