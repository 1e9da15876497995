/**
 * Progress lines off a terminal: a known total shows done/total and an ETA; a streamed step's row
 * counter (total unknown) shows the rows so far and their rate, and no ETA it cannot know.
 */
import { consoleReporter, rowProgress } from "../src/engine/progress.ts";
import { assert, assertEquals } from "./assert.ts";

const captured = (f: () => void): string[] => {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.join(" "));
  try {
    f();
  } finally {
    console.log = original;
  }
  return lines;
};

Deno.test("progress: a known total prints done/total and an ETA", () => {
  const lines = captured(() => {
    const p = consoleReporter({ interactive: false, intervalSeconds: 0 }).progress("[train]");
    p.update({ done: 3, total: 10, loss: 1.5, rate: 100 });
    p.finish();
  });
  assertEquals(lines.length, 1);
  assert(
    /^\s+\[train\] 3\/10 {2}loss 1\.5000 {2}100 tok\/s {2}elapsed \d+s {2}ETA \d+s$/.test(lines[0]),
    lines[0],
  );
});

Deno.test("progress: rowProgress counts streamed rows, with a rate and no ETA", () => {
  const lines = captured(() => {
    const rows = rowProgress(consoleReporter({ interactive: false, intervalSeconds: 0 }), "[tokens]");
    rows.add(1000);
    rows.add(24);
    rows.finish();
  });
  assertEquals(lines.length, 2);
  assert(/^\s+\[tokens\] 1000 rows {2}\d+ rows\/s {2}elapsed \d+s$/.test(lines[0]), lines[0]);
  assert(/^\s+\[tokens\] 1024 rows /.test(lines[1]), lines[1]);
  assert(!lines.some((l) => l.includes("ETA")), lines.join("\n"));
});

Deno.test("progress: off a terminal, updates within the interval are not printed", () => {
  const lines = captured(() => {
    const rows = rowProgress(consoleReporter({ interactive: false, intervalSeconds: 3600 }), "[tokens]");
    for (let i = 0; i < 50; i++) rows.add(10);
  });
  assertEquals(lines, []); // the interval counts from the process start, and all 50 fall within the hour
});
