import { assert, assertEquals } from "./assert.ts";
import { Effect, Either } from "effect";
import { defaultLocator, readExamples } from "../src/data/formats.ts";
import type { DataFormat } from "../src/data/formats.ts";
import { describeError } from "../src/errors.ts";

const withFile = async <T>(content: string | Uint8Array, fn: (path: string) => Promise<T>): Promise<T> => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-formats-" });
  const path = `${dir}/rows.jsonl`;
  try {
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
    return await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
};

const read = (path: string, format: DataFormat) =>
  Effect.runPromise(Effect.either(readExamples(path, format)));

/** The error of a failed read, asserting its tag. */
const failure = async (content: string | Uint8Array, format: DataFormat) =>
  await withFile(content, async (path) => {
    const r = await read(path, format);
    assert(Either.isLeft(r), "expected failure");
    return { error: r.left, path };
  });

Deno.test("tags: reads rows, skips blank lines, records file:line", async () => {
  const rows = [
    JSON.stringify({ prompt: "p1", response: "<Thinking>t</Thinking><Answer>1</Answer>" }),
    "",
    "   ",
    JSON.stringify({ prompt: "p2", response: "r2", extra: 5 }),
  ].join("\n") + "\n";
  await withFile(rows, async (path) => {
    const r = await read(path, "tags");
    assert(Either.isRight(r));
    assertEquals(r.right, [
      { source: `${path}:1`, prompt: "p1", response: "<Thinking>t</Thinking><Answer>1</Answer>" },
      { source: `${path}:4`, prompt: "p2", response: "r2" },
    ]);
  });
});

Deno.test("gsm8k, reasoning and math formats map to prompt/response", async () => {
  const gsm = JSON.stringify({ question: "q", answer: "2+2=4\n#### 4" });
  await withFile(gsm, async (path) => {
    const r = await read(path, "gsm8k");
    assertEquals(Either.getOrThrow(r), [{ source: `${path}:1`, prompt: "q", response: "2+2=4\n#### 4" }]);
  });
  const reasoning = JSON.stringify({ prompt: "q", reasoning: "because", answer: "7" });
  await withFile(reasoning, async (path) => {
    const r = await read(path, "reasoning");
    assertEquals(Either.getOrThrow(r), [{
      source: `${path}:1`,
      prompt: "q",
      response: "<Thinking>because</Thinking><Answer>7</Answer>",
      answerField: "7",
    }]);
  });
  const math = JSON.stringify({ problem: "p", solution: "so \\boxed{3}", level: "Level 1", unique_id: "x" });
  await withFile(math, async (path) => {
    const r = await read(path, "math");
    assertEquals(Either.getOrThrow(r), [{ source: `${path}:1`, prompt: "p", response: "so \\boxed{3}" }]);
  });
  assertEquals(defaultLocator.tags, { kind: "answer-tags" });
  assertEquals(defaultLocator.gsm8k, { kind: "gsm8k" });
  assertEquals(defaultLocator.reasoning, { kind: "field" });
  assertEquals(defaultLocator.math, { kind: "boxed" });
});

Deno.test("empty file gives no examples", async () => {
  await withFile("", async (path) => assertEquals(Either.getOrThrow(await read(path, "tags")), []));
  await withFile("\n\n", async (path) => assertEquals(Either.getOrThrow(await read(path, "tags")), []));
});

Deno.test("bad JSON line -> InvalidRow with its 1-based line", async () => {
  const ok = JSON.stringify({ prompt: "p", response: "r" });
  const { error, path } = await failure(`${ok}\n\n${ok}\n{"prompt": "p", "response": \n`, "tags");
  assertEquals(error._tag, "InvalidRow");
  if (error._tag !== "InvalidRow") return;
  assertEquals(error.file, path);
  assertEquals(error.line, 4);
  assertEquals(error.field, undefined);
  assert(error.reason.includes("JSON"), error.reason);
});

Deno.test("missing field, wrong type and empty text name the field", async () => {
  const cases: Array<[string, DataFormat, string]> = [
    [JSON.stringify({ response: "r" }), "tags", "prompt"],
    [JSON.stringify({ prompt: "p", response: 5 }), "tags", "response"],
    [JSON.stringify({ prompt: "", response: "r" }), "tags", "prompt"],
    [JSON.stringify({ prompt: "p", response: "  " }), "tags", "response"],
    [JSON.stringify({ question: "q" }), "gsm8k", "answer"],
    [JSON.stringify({ prompt: "p", reasoning: "r" }), "reasoning", "answer"],
    [JSON.stringify({ problem: "p", solution: null }), "math", "solution"],
  ];
  for (const [row, format, field] of cases) {
    const { error } = await failure(`${row}\n`, format);
    assertEquals(error._tag, "InvalidRow");
    if (error._tag !== "InvalidRow") continue;
    assertEquals([error.line, error.field], [1, field], `${format} ${row}: ${error.reason}`);
    assert(describeError(error).includes(`field "${field}"`));
  }
  const { error } = await failure("[1, 2]\n", "tags");
  assert(error._tag === "InvalidRow" && error.reason.includes("object"));
});

Deno.test("non-UTF-8 bytes -> InvalidRow at their line", async () => {
  const enc = new TextEncoder();
  const bytes = new Uint8Array([
    ...enc.encode(JSON.stringify({ prompt: "p", response: "r" }) + "\n"),
    ...enc.encode('{"prompt": "caf'),
    0xe9, // Latin-1 "é": not valid UTF-8
    ...enc.encode('", "response": "r"}\n'),
  ]);
  const { error } = await failure(bytes, "tags");
  assert(
    error._tag === "InvalidRow" && error.line === 2 && error.reason.includes("UTF-8"),
    JSON.stringify(error),
  );
});

Deno.test("missing file and directory -> FileUnreadable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-formats-" });
  try {
    const missing = await read(`${dir}/nope.jsonl`, "tags");
    assert(Either.isLeft(missing) && missing.left._tag === "FileUnreadable");
    const directory = await read(dir, "tags");
    assert(Either.isLeft(directory) && directory.left._tag === "FileUnreadable");
    if (directory.left._tag === "FileUnreadable") assertEquals(directory.left.path, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
