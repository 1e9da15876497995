/**
 * Bad input never gives a stack trace: every row of the table in bad_input_cases.ts, run through the
 * real steps, loaders or CLI, fails with the tagged error it names and a message that mentions where
 * (file:line, field, node); CLI rows exit non-zero; rows that rerun check that finished steps stayed
 * cached. The table in docs/bad-input.md (written by tools/bad_input_table.ts) must list every row.
 */
import { assert, assertEquals } from "./assert.ts";
import { cases, root } from "./bad_input_cases.ts";

assert(cases.length >= 30, `the table has only ${cases.length} rows`);
assertEquals(new Set(cases.map((c) => c.name)).size, cases.length, "case names must be unique");

for (const c of cases) {
  Deno.test(`bad input (${c.via}): ${c.name} -> ${c.expected}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "bad-input-" });
    try {
      const seen = await c.run(dir);
      assertEquals(seen.tag, c.expected, seen.message);
      for (const m of c.mentions) assert(seen.message.includes(m), `message lacks "${m}":\n${seen.message}`);
      // One line a user acts on (plus, from the CLI, the line on how to resume), never a trace.
      assert(!/\n\s+at /.test(seen.message), seen.message);
      assert(seen.message.split("\n").length <= 2, seen.message);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("bad input: docs/bad-input.md lists every case (regenerate with tools/bad_input_table.ts)", async () => {
  const doc = await Deno.readTextFile(`${root}/docs/bad-input.md`);
  for (const c of cases) assert(doc.includes(`| ${c.name} |`), `docs/bad-input.md lacks "${c.name}"`);
});
