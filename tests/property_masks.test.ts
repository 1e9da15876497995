/**
 * Properties of the loss masks, for any example shape (prompt length, key and answer spans anywhere,
 * even overlapping the prompt) and any mask spec:
 *   - no mask ever puts weight on a prompt position or on position 0 (nothing predicts it);
 *   - response, key, answer and prefix masks have every weight in [0, 1] (exactly 0 or 1) and select
 *     exactly the positions they describe; a mix's weights stay within [0, sum of its part weights];
 *   - the buildMasks step writes those same weights, prompt positions 0, for real tokenised data.
 */
import fc from "fast-check";
import { Effect } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { buildMask, type MaskSpec } from "../src/data/masks.ts";
import type { TokenisedExample } from "../src/data/tokenise.ts";
import { buildMasksStep } from "../src/steps/build_masks.ts";
import { silentReporter } from "../src/engine/progress.ts";
import type { MaskedRecord, TokenRecord } from "../src/data/records.ts";

const span = (n: number) =>
  fc.tuple(fc.integer({ min: 0, max: n }), fc.integer({ min: 0, max: n })).map(([a, b]) => ({
    start: Math.min(a, b),
    end: Math.max(a, b),
  }));

const example: fc.Arbitrary<TokenisedExample> = fc.integer({ min: 1, max: 48 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    promptLength: fc.integer({ min: 0, max: n }),
    key: fc.option(span(n), { nil: undefined }),
    answer: fc.option(span(n), { nil: undefined }),
  }).map(({ n, promptLength, key, answer }) => ({
    source: "prop:1",
    ids: Array.from({ length: n }, (_, i) => i),
    promptLength,
    ...(key ? { key } : {}),
    ...(answer ? { answer } : {}),
    truncated: false,
    keyTruncated: false,
  }))
);

const simple: fc.Arbitrary<MaskSpec> = fc.oneof(
  fc.constant({ kind: "response" } as const),
  fc.constant({ kind: "key" } as const),
  fc.constant({ kind: "answer" } as const),
  fc.integer({ min: 1, max: 60 }).map((k) => ({ kind: "prefix", k }) as const),
);

const spec: fc.Arbitrary<MaskSpec> = fc.letrec<{ spec: MaskSpec }>((tie) => ({
  spec: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    simple,
    fc.array(fc.record({ weight: fc.double({ min: 0, max: 4, noNaN: true }), mask: tie("spec") }), {
      minLength: 1,
      maxLength: 3,
    }).map((parts) => ({ kind: "mix", parts }) as const),
  ),
})).spec;

/** The largest weight a spec can give one position. */
const bound = (s: MaskSpec): number =>
  s.kind === "mix" ? s.parts.reduce((sum, p) => sum + p.weight * bound(p.mask), 0) : 1;

/** Positions a simple mask selects, from its definition rather than from the implementation. */
const selected = (s: MaskSpec, ex: TokenisedExample, t: number): boolean => {
  if (t === 0 || t < ex.promptLength) return false;
  switch (s.kind) {
    case "response":
      return true;
    case "key":
      return ex.key !== undefined && ex.key.start <= t && t < ex.key.end;
    case "answer":
      return ex.answer !== undefined && ex.answer.start <= t && t < ex.answer.end;
    case "prefix":
      return t < ex.promptLength + s.k;
    default:
      throw new Error("not a simple mask");
  }
};

Deno.test("property: masks never weight prompt positions or position 0", () => {
  fc.assert(
    fc.property(example, spec, (ex, s) => {
      const m = buildMask(s, ex);
      assertEquals(m.length, ex.ids.length);
      for (let t = 0; t < Math.max(1, ex.promptLength) && t < m.length; t++) assertEquals(m[t], 0);
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: response/key/answer/prefix weights are 0 or 1, exactly on their positions", () => {
  fc.assert(
    fc.property(example, simple, (ex, s) => {
      const m = buildMask(s, ex);
      m.forEach((w, t) => assertEquals(w, selected(s, ex, t) ? 1 : 0, `position ${t}`));
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: a mix's weights stay within [0, the sum of its part weights]", () => {
  fc.assert(
    fc.property(example, spec, (ex, s) => {
      const limit = bound(s);
      // Float32 storage rounds the sum; allow one part in a million.
      for (const w of buildMask(s, ex)) assert(w >= 0 && w <= limit * (1 + 1e-6) + 1e-12, `${w} > ${limit}`);
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: the buildMasks step writes weights in [0, 1] and zeros on the prompt", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(example, { minLength: 1, maxLength: 8 }), simple, async (exs, s) => {
      // The step refuses examples without any weight, so give every one a response token inside its key
      // and answer part: the property is about where the weights go, not about that refusal.
      const rows: TokenRecord[] = exs.filter((e) => e.ids.length >= 2).map((e) => {
        // At least one prompt token: with none, position 0 would be the first response token, which nothing
        // predicts, so a one-token prefix mask would rightly be empty.
        const pl = Math.max(1, Math.min(e.promptLength, e.ids.length - 1));
        return {
          source: e.source,
          input_ids: e.ids,
          prompt_length: pl,
          key: { start: Math.max(pl, 1), end: e.ids.length },
          answer_part: { start: Math.max(pl, 1), end: e.ids.length },
          answer: "x",
        };
      });
      fc.pre(rows.length > 0);
      const dir = await Deno.makeTempDir();
      await Deno.writeTextFile(`${dir}/tokens.jsonl`, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
      await Deno.mkdir(`${dir}/out`);
      await Effect.runPromise(Effect.scoped(buildMasksStep.run({ mask: s }, { tokens: dir }, {
        dir: `${dir}/out`,
        resumed: false,
        node: "masks",
        reporter: silentReporter(),
        backend: "none",
      })));
      const out = (await Deno.readTextFile(`${dir}/out/masked.jsonl`)).trim().split("\n")
        .map((l) => JSON.parse(l) as MaskedRecord);
      assertEquals(out.length, rows.length);
      out.forEach((r) => {
        r.weights.forEach((w, t) => {
          assert(w >= 0 && w <= 1, `weight ${w}`);
          if (t < r.prompt_length || t === 0) assertEquals(w, 0);
        });
      });
      await Deno.remove(dir, { recursive: true });
    }),
    { numRuns: 40 },
  );
});
