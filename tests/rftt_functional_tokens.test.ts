/**
 * RFTT's trace grammar: the transition table as the issue states it, rendering and parsing round trips for
 * every tag sequence the table allows, and the parser's errors name the offending position.
 */
import fc from "fast-check";
import { Effect, Exit } from "effect";
import { assert, assertEquals } from "./assert.ts";
import {
  ALLOWED_AFTER,
  FUNCTIONAL_TAGS,
  FUNCTIONAL_TOKENS,
  type FunctionalTag,
  parseTrace,
  parseTraceAt,
  renderTrace,
  type Segment,
  sequenceProblem,
  traceAnswer,
} from "../src/data/functional_tokens.ts";

Deno.test("functional tokens: 16 tokens, opening and closing for each of the 8 tags", () => {
  assertEquals(FUNCTIONAL_TOKENS.length, 16);
  assertEquals(new Set(FUNCTIONAL_TOKENS).size, 16);
  for (const t of FUNCTIONAL_TAGS) {
    assert(FUNCTIONAL_TOKENS.includes(`<${t}>`) && FUNCTIONAL_TOKENS.includes(`</${t}>`));
  }
});

Deno.test("functional tokens: the transition table is the one the issue states", () => {
  const set = (xs: ReadonlyArray<string>) => [...xs].sort();
  assertEquals(set(ALLOWED_AFTER.root), set(["clarify", "analysis", "subquestion", "next_step"]));
  assertEquals(set(ALLOWED_AFTER.clarify), set(["analysis", "subquestion", "next_step", "direct_answer"]));
  assertEquals(set(ALLOWED_AFTER.analysis), set(["subquestion", "next_step", "direct_answer"]));
  assertEquals(set(ALLOWED_AFTER.subquestion), set(["next_step", "direct_answer"]));
  assertEquals(
    set(ALLOWED_AFTER.next_step),
    set(["next_step", "direct_answer", "subquestion", "verify", "output"]),
  );
  assertEquals(set(ALLOWED_AFTER.direct_answer), set(["output", "verify"]));
  assertEquals(
    set(ALLOWED_AFTER.verify),
    set(FUNCTIONAL_TAGS.filter((t) => t !== "clarify" && t !== "analysis")),
  );
  assertEquals(
    set(ALLOWED_AFTER.refine),
    set(["next_step", "direct_answer", "output", "subquestion", "verify"]),
  );
  assertEquals(ALLOWED_AFTER.output, []);
});

/** A random walk through the table that ends at <output> (at most `max` segments before it). */
const validTags = (max: number) =>
  fc.array(fc.nat(), { minLength: 1, maxLength: max }).map((choices) => {
    const tags: FunctionalTag[] = [];
    let state: FunctionalTag | "root" = "root";
    for (const c of choices) {
      const options: ReadonlyArray<FunctionalTag> = ALLOWED_AFTER[state].filter((t) => t !== "output");
      state = options[c % options.length];
      tags.push(state);
    }
    // Every tag reaches <output> within two steps (via verify when it is not allowed directly).
    if (!ALLOWED_AFTER[state].includes("output")) {
      state = ALLOWED_AFTER[state].includes("verify") ? "verify" : "direct_answer";
      tags.push(state);
      if (!ALLOWED_AFTER[state].includes("output")) tags.push("verify");
    }
    tags.push("output");
    return tags;
  });

const content = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !/<\/?[a-z_]+>/.test(s));

Deno.test("functional tokens: every trace the table allows renders and parses back to itself", () => {
  fc.assert(
    fc.property(validTags(10), fc.array(content, { minLength: 14, maxLength: 14 }), (tags, texts) => {
      const segments: Segment[] = tags.map((tag, i) => ({ tag, content: texts[i] }));
      const parsed = parseTrace(renderTrace(segments));
      assert(parsed.ok, parsed.ok ? "" : parsed.problem.reason);
      assertEquals(parsed.segments, segments);
      assertEquals(traceAnswer(parsed.segments), texts[tags.length - 1].trim());
    }),
    { numRuns: 300 },
  );
});

Deno.test("functional tokens: a tag the table forbids is rejected at its segment's offset", () => {
  fc.assert(
    fc.property(validTags(6), fc.nat(), fc.nat(), (tags, pick, which) => {
      const i = pick % tags.length;
      const prev = i === 0 ? "root" : tags[i - 1];
      const forbidden = FUNCTIONAL_TAGS.filter((t) => !ALLOWED_AFTER[prev].includes(t));
      if (forbidden.length === 0) return;
      const bad = [...tags];
      bad[i] = forbidden[which % forbidden.length];
      const segments = bad.map((tag) => ({ tag, content: "x" }));
      const parsed = parseTrace(renderTrace(segments));
      assert(!parsed.ok);
      assertEquals(parsed.problem.segment, i);
      assertEquals(parsed.problem.offset, renderTrace(segments.slice(0, i)).length);
    }),
    { numRuns: 300 },
  );
});

Deno.test("functional tokens: malformed traces fail with the position and reason", () => {
  const cases: Array<[string, number, string]> = [
    ["<next_step>\n1+2=3\n</next_step>\n", 31, "must end with an <output>"],
    ["<next_step>\n1+2=3\n</next_step>\n<output>\n3\n</output>\nmore", 52, "expected an opening"],
    ["<next_step>\n1+2=3</next_step>\n<output>\n3\n</output>\n", 12, "is not closed"],
    ["<next_step>\n\n</next_step>\n<output>\n3\n</output>\n", 12, "is empty"],
    ["<next_step>\n1<verify>2\n</next_step>\n<output>\n3\n</output>\n", 13, "<verify> inside"],
    ["<output>\n3\n</output>\n", 0, "may not follow the start"],
    ["<next_step>\na\n</next_step>\n<output>\n3\n</output>\n<verify>\nb\n</verify>\n", 48, "after <output>"],
    ["<bogus>\na\n</bogus>\n", 0, "expected an opening"],
  ];
  for (const [text, offset, reason] of cases) {
    const r = parseTrace(text);
    assert(!r.ok, text);
    assertEquals(r.problem.offset, offset, text);
    assert(r.problem.reason.includes(reason), `${text}: ${r.problem.reason}`);
  }
  assertEquals(sequenceProblem(["next_step", "output"]), undefined);
  const exit = Effect.runSyncExit(
    parseTraceAt("<output>\n3\n</output>\n", { file: "data.jsonl", line: 7, field: "response" }),
  );
  assert(Exit.isFailure(exit));
  const err = exit.cause._tag === "Fail" ? exit.cause.error : undefined;
  assertEquals(err?._tag, "InvalidRow");
  assertEquals([err?.file, err?.line, err?.field], ["data.jsonl", 7, "response"]);
  assert(err?.reason.includes("character 0"));
});
