import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";
import { Either, Schema } from "effect";
import { buildMask, MaskSpec, maskWeightSum } from "../src/data/masks.ts";
import type { TokenisedExample } from "../src/data/tokenise.ts";

// 4 prompt tokens, 6 response tokens (the last is EOS), key at positions 7..9.
const ex: TokenisedExample = {
  source: "m:1",
  ids: [10, 11, 12, 13, 20, 21, 22, 23, 24, 99],
  promptLength: 4,
  key: { start: 7, end: 9 },
  truncated: false,
  keyTruncated: false,
};
const arr = (m: Float32Array) => Array.from(m);

Deno.test("response mask: every response token including EOS, never the prompt", () => {
  assertEquals(arr(buildMask({ kind: "response" }, ex)), [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
});

Deno.test("key mask: key tokens only; no key gives zeros", () => {
  assertEquals(arr(buildMask({ kind: "key" }, ex)), [0, 0, 0, 0, 0, 0, 0, 1, 1, 0]);
  const noKey: TokenisedExample = { ...ex, key: undefined };
  assertEquals(maskWeightSum(buildMask({ kind: "key" }, noKey)), 0);
});

Deno.test("prefix mask covers exactly the first k response tokens", () => {
  for (let k = 1; k <= 8; k++) {
    const m = buildMask({ kind: "prefix", k }, ex);
    const expected = ex.ids.map((_, t) => (t >= 4 && t < 4 + Math.min(k, 6) ? 1 : 0));
    assertEquals(arr(m), expected, `k=${k}`);
  }
});

Deno.test("mix: weighted sum of parts", () => {
  const m = buildMask({
    kind: "mix",
    parts: [{ weight: 0.25, mask: { kind: "response" } }, { weight: 0.75, mask: { kind: "key" } }],
  }, ex);
  const expected = [0, 0, 0, 0, 0.25, 0.25, 0.25, 1, 1, 0.25];
  expected.forEach((w, t) => assertAlmostEquals(m[t], w, 1e-6));
  assertAlmostEquals(maskWeightSum(m), 0.25 * 6 + 0.75 * 2, 1e-6);
  const nested = buildMask({
    kind: "mix",
    parts: [{ weight: 2, mask: { kind: "mix", parts: [{ weight: 0.5, mask: { kind: "key" } }] } }],
  }, ex);
  assertEquals(arr(nested), arr(buildMask({ kind: "key" }, ex)));
});

Deno.test("position 0 and the prompt are never marked, even with an empty prompt or a bad key", () => {
  const noPrompt: TokenisedExample = { ...ex, promptLength: 0, key: { start: 0, end: 3 } };
  for (const spec of [{ kind: "response" }, { kind: "key" }, { kind: "prefix", k: 3 }] as MaskSpec[]) {
    assertEquals(buildMask(spec, noPrompt)[0], 0, spec.kind);
  }
  const keyInPrompt: TokenisedExample = { ...ex, key: { start: 2, end: 6 } };
  assertEquals(arr(buildMask({ kind: "key" }, keyInPrompt)), [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]);
  const truncated: TokenisedExample = { ...ex, ids: ex.ids.slice(0, 4), truncated: true };
  assertEquals(maskWeightSum(buildMask({ kind: "response" }, truncated)), 0);
});

Deno.test("MaskSpec schema", () => {
  const decode = Schema.decodeUnknownEither(MaskSpec);
  assert(Either.isRight(decode({ kind: "prefix", k: 3 })));
  assert(Either.isLeft(decode({ kind: "prefix", k: 0 })));
  assert(Either.isLeft(decode({ kind: "prefix", k: 1.5 })));
  assert(
    Either.isRight(
      decode({
        kind: "mix",
        parts: [{ weight: 1, mask: { kind: "mix", parts: [{ weight: 0.5, mask: { kind: "key" } }] } }],
      }),
    ),
  );
  assert(Either.isLeft(decode({ kind: "mix", parts: [] })));
  assert(Either.isLeft(decode({ kind: "mix", parts: [{ weight: -1, mask: { kind: "key" } }] })));
  assert(Either.isLeft(decode({ kind: "explicit" })));
});
