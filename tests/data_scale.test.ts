/**
 * Row counts past the argument-spread limit: `Math.max(...rows)` throws a RangeError at a few hundred
 * thousand rows, so the functions that used such spreads over per-row arrays (training's vocabulary and
 * length checks, padding) now loop, and the streamed training-data loader and takeRows handle as many rows.
 */
import { assertEquals, assertThrows } from "./assert.ts";
import { Effect } from "effect";
import { pad, sequenceExtent } from "../src/train/batches.ts";
import { readTrainingRows, writeJsonl } from "../src/data/records.ts";
import { takeRowsStep } from "../src/steps/take_rows.ts";
import { silentReporter } from "../src/engine/progress.ts";

const N = 300_000;

Deno.test("scale: 300k rows pass the checks that used spreads, and load streamed", async () => {
  const lengths = Array.from({ length: N }, (_, i) => 1 + (i % 7));
  // The limit is real: the old form throws on this many rows.
  assertThrows(() => Math.max(...lengths), RangeError);

  const dir = await Deno.makeTempDir();
  const rows = lengths.map((n, i) => ({
    source: `d:${i + 1}`,
    input_ids: Array.from({ length: n }, (_, j) => (i === 123_456 && j === 0 ? 9999 : j)),
    prompt_length: 0,
    key: { start: 0, end: 1 },
    answer_part: { start: 0, end: 1 },
    answer: "",
    weights: Array.from({ length: n }, () => 1),
  }));
  await Effect.runPromise(writeJsonl(`${dir}/masked.jsonl`, rows));
  const data = await Effect.runPromise(readTrainingRows(`${dir}/masked.jsonl`));
  assertEquals(data.length, N);
  assertEquals(data[123_456].ids[0], 9999);
  assertEquals(sequenceExtent(data), { maxId: 9999, longest: 7 });
  assertEquals(pad(data.slice(0, 3), 0).seqLen, 3);

  // takeRows streams: it keeps the first n and counts the rest.
  const lines: string[] = [];
  await Effect.runPromise(
    Effect.scoped(
      takeRowsStep.run({ n: 250_001, file: "masked.jsonl" }, { from: dir }, {
        dir: await Deno.makeTempDir(),
        resumed: false,
        node: "take",
        reporter: silentReporter(lines),
        backend: "none",
      }).pipe(Effect.asVoid),
    ),
  );
  assertEquals(lines, [`[take] 250001 of ${N} rows`]);
});
