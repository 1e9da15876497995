/**
 * Streaming line I/O (src/io/lines.ts, data/records.ts, data/formats.ts): a file is read in chunks, so
 * lines split across chunks, CRLF endings, multi-byte characters cut by a chunk boundary and errors'
 * file:line must come out exactly as if the file had been read whole; writers leave nothing behind
 * when they fail.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { Effect, Exit } from "effect";
import { countNonBlankLinesSync, LineDecodeError, LineReader } from "../src/io/lines.ts";
import { createJsonl, openJsonl, readJsonl, writeJsonl } from "../src/data/records.ts";
import { openExamples, parseExamples, readExamples } from "../src/data/formats.ts";
import { setChunkWriter } from "../src/io/fs.ts";
import { InvalidRow, WriteFailed } from "../src/errors.ts";

const readAll = async (path: string, chunk: number) => {
  const reader = await LineReader.open(path, chunk);
  const out: Array<[number, string]> = [];
  try {
    for (let b = await reader.next(); b !== undefined; b = await reader.next()) {
      for (const l of b) out.push([l.line, l.text]);
    }
  } finally {
    reader.close();
  }
  return out;
};

const tempFile = async (content: string | Uint8Array) => {
  const path = await Deno.makeTempFile({ suffix: ".jsonl" });
  if (typeof content === "string") await Deno.writeTextFile(path, content);
  else await Deno.writeFile(path, content);
  return path;
};

Deno.test("lines: every chunk size gives the same lines (split lines, CRLF, multi-byte, blank, no final newline)", async () => {
  // "é" is 2 bytes, "€" 3 and "😀" 4: with chunks of 1-7 bytes, each is cut by some boundary.
  const text = 'a\r\n{"x":"é€😀"}\n\n  \r\nlong line with ünïcödé 😀😀 and more\r\n€\nlast without newline';
  const expected: Array<[number, string]> = [
    [1, "a"],
    [2, '{"x":"é€😀"}'],
    [5, "long line with ünïcödé 😀😀 and more"],
    [6, "€"],
    [7, "last without newline"],
  ];
  const path = await tempFile(text);
  for (const chunk of [1, 2, 3, 4, 5, 7, 64, 1 << 20]) {
    assertEquals(await readAll(path, chunk), expected, `chunk size ${chunk}`);
  }
});

Deno.test("lines: countNonBlankLinesSync counts the lines LineReader returns, at every chunk size", async () => {
  // Blank, whitespace-only (ASCII and U+00A0 / U+3000, which String.trim removes), CRLF, multi-byte
  // characters across chunk boundaries, and a last line with and without a newline.
  for (
    const text of [
      'a\r\n{"x":"é€😀"}\n\n  \r\n\u00a0\u3000\n\t\v\f\nx\u00a0\n€\nlast',
      "\n\n",
      "",
      "one\n",
      "\u00a0",
    ]
  ) {
    const path = await tempFile(text);
    const expected = (await readAll(path, 1 << 20)).length;
    for (const chunk of [1, 2, 3, 5, 64, 1 << 20]) {
      assertEquals(countNonBlankLinesSync(path, chunk), expected, `${JSON.stringify(text)}, chunk ${chunk}`);
    }
  }
  // The count the budget uses, independently of LineReader: 5 visible lines in the first text.
  assertEquals(
    countNonBlankLinesSync(
      await tempFile('a\r\n{"x":"é€😀"}\n\n  \r\n\u00a0\u3000\n\t\v\f\nx\u00a0\n€\nlast'),
    ),
    5,
  );
});

Deno.test("lines: invalid UTF-8 is reported at its line, also when the bad line spans chunks", async () => {
  const good = new TextEncoder().encode("ok\nfine\n");
  const bad = new Uint8Array([...good, 0x61, 0xc3, 0x28, 0x62, 0x0a, 0x7a]); // 0xc3 0x28: not UTF-8
  const path = await tempFile(bad);
  for (const chunk of [2, 3, 1 << 20]) {
    const e = await assertRejects(() => readAll(path, chunk));
    assert(e instanceof LineDecodeError && e.line === 3, `chunk ${chunk}: ${e}`);
  }
});

Deno.test("formats: a data file past one chunk streams with the same rows and file:line errors as read whole", async () => {
  // Just over one 1 MiB chunk of GSM8K-format rows; the row across the boundary has a 3-byte "€" cut by it.
  const enc = new TextEncoder();
  const rows: string[] = [];
  let bytes = 0;
  const answer = `so ${"and then ".repeat(40)}\n#### 7`;
  while (bytes < (1 << 20) - 2000) {
    const row = JSON.stringify({ question: `q${rows.length} ${"é".repeat(rows.length % 50)}`, answer }) +
      "\n";
    rows.push(row);
    bytes += enc.encode(row).length;
  }
  const head = '{"question":"';
  const pad = (1 << 20) - bytes - head.length - 3 * 10 - 1; // the boundary falls 1 byte into the 11th "€"
  const across = `${head}${"p".repeat(pad)}${"€".repeat(20)}","answer":${JSON.stringify(answer)}}\n`;
  assertEquals(bytes + enc.encode(across).indexOf(0xe2, (1 << 20) - bytes - 1), (1 << 20) - 1);
  rows.push(across);
  for (let i = 0; i < 200; i++) rows.push(JSON.stringify({ question: `tail ${i}`, answer }) + "\n");
  const text = rows.join("");
  const path = await tempFile(text);
  const streamed = await Effect.runPromise(readExamples(path, "gsm8k"));
  const whole = await Effect.runPromise(parseExamples(path, await Deno.readFile(path), "gsm8k"));
  assertEquals(streamed.length, rows.length);
  assertEquals(streamed, whole);

  // A broken row late in the file (third chunk) is named by its line.
  const broken = rows.slice();
  const at = broken.length - 3;
  broken[at] = '{"question": "q", "answer": 5}\n';
  const badPath = await tempFile(broken.join(""));
  const exit = await Effect.runPromiseExit(readExamples(badPath, "gsm8k"));
  assert(Exit.isFailure(exit) && exit.cause._tag === "Fail", String(exit));
  const err = exit.cause.error;
  assert(err instanceof InvalidRow, String(err));
  assertEquals([err.file, err.line, err.field], [badPath, at + 1, "answer"]);

  // Invalid UTF-8 in a data file is an InvalidRow at its line, as when read whole.
  const bin = new Uint8Array([...new TextEncoder().encode(rows[0]), 0xff, 0x0a]);
  const binExit = await Effect.runPromiseExit(
    Effect.scoped(
      Effect.flatMap(openExamples(await tempFile(bin), "gsm8k"), (r) => Effect.zip(r.next, r.next)),
    ),
  );
  assert(Exit.isFailure(binExit) && binExit.cause._tag === "Fail", String(binExit));
  assert(
    binExit.cause.error instanceof InvalidRow && binExit.cause.error.line === 2,
    String(binExit.cause.error),
  );
});

Deno.test("records: a JSONL error names its line; rows round-trip in batches", async () => {
  const dir = await Deno.makeTempDir();
  const rows = Array.from({ length: 50_000 }, (_, i) => ({ i, s: "x".repeat(i % 40) }));
  await Effect.runPromise(writeJsonl(`${dir}/r.jsonl`, rows));
  const batches = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const reader = yield* openJsonl<{ i: number }>(`${dir}/r.jsonl`);
    let n = 0;
    let sum = 0;
    for (let b = yield* reader.next; b !== undefined; b = yield* reader.next) {
      n++;
      for (const r of b) sum += r.i;
    }
    return { n, sum };
  })));
  assert(batches.n > 1, "the file comes back in several batches");
  assertEquals(batches.sum, (50_000 * 49_999) / 2);

  await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"a":1}\n{"a":2}\n{"a":\n');
  const exit = await Effect.runPromiseExit(readJsonl(`${dir}/bad.jsonl`));
  assert(Exit.isFailure(exit) && exit.cause._tag === "Fail", String(exit));
  assert(/line 3: not valid JSON/.test(exit.cause.error.reason), exit.cause.error.reason);
});

Deno.test("records: a writer that fails (disk full) or is never committed leaves no file behind", async () => {
  const dir = await Deno.makeTempDir();
  // Never committed: the scope closes, the temporary file goes.
  await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const w = yield* createJsonl(`${dir}/a.jsonl`);
    yield* w.write([{ a: 1 }]);
  })));
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), []);

  setChunkWriter(() => Promise.reject(new Error("No space left on device (os error 28)")));
  try {
    const big = Array.from({ length: 100_000 }, (_, i) => ({ i, pad: "y".repeat(30) }));
    const exit = await Effect.runPromiseExit(writeJsonl(`${dir}/b.jsonl`, big));
    assert(Exit.isFailure(exit) && exit.cause._tag === "Fail", String(exit));
    assert(exit.cause.error instanceof WriteFailed && /No space/.test(exit.cause.error.reason));
  } finally {
    setChunkWriter(undefined);
  }
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), []);
});
