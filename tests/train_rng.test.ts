import { isRngState, Rng } from "../src/util/rng.ts";
import { assert, assertEquals, assertNotEquals, assertThrows } from "./assert.ts";

Deno.test("same seed, same stream; different seeds (including high bits) differ", () => {
  const draw = (r: Rng) => Array.from({ length: 5 }, () => r.nextUint32());
  assertEquals(draw(Rng.seeded(42)), draw(Rng.seeded(42)));
  assertNotEquals(draw(Rng.seeded(42)), draw(Rng.seeded(43)));
  assertNotEquals(draw(Rng.seeded(1)), draw(Rng.seeded(2 ** 32 + 1)));
});

Deno.test("state() / fromState resumes the exact stream", () => {
  const a = Rng.seeded(3);
  for (let i = 0; i < 10; i++) a.next();
  const saved = JSON.parse(JSON.stringify(a.state()));
  const b = Rng.fromState(saved);
  const c = a.clone();
  for (let i = 0; i < 20; i++) {
    const x = a.normal();
    assertEquals(b.normal(), x);
    assertEquals(c.normal(), x);
  }
  assert(isRngState(saved));
  assert(!isRngState([0, 0, 0, 0]));
  assert(!isRngState([1, 2, 3]));
  assertThrows(() => Rng.fromState([1, 2, 3, -1]), RangeError);
});

Deno.test("next in [0,1), int in range, normal has mean 0 and variance 1", () => {
  const r = Rng.seeded(9);
  let sum = 0, sq = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const u = r.next();
    assert(u >= 0 && u < 1);
    const k = r.int(7);
    assert(Number.isInteger(k) && k >= 0 && k < 7);
    const z = r.normal();
    sum += z;
    sq += z * z;
  }
  assert(Math.abs(sum / n) < 0.03, `mean ${sum / n}`);
  assert(Math.abs(sq / n - 1) < 0.05, `variance ${sq / n}`);
  assertThrows(() => r.int(0), RangeError);
});

Deno.test("shuffle is a deterministic permutation", () => {
  const xs = Array.from({ length: 50 }, (_, i) => i);
  const a = Rng.seeded(5).shuffle([...xs]);
  assertEquals(a, Rng.seeded(5).shuffle([...xs]));
  assertEquals([...a].sort((p, q) => p - q), xs);
  assertNotEquals(a, xs);
});
