import { isRngState, Rng } from "../src/util/rng.ts";
import { assert, assertEquals, assertNotEquals, assertThrows } from "./assert.ts";

/**
 * An independent implementation, in BigInt arithmetic, of the algorithms rng.ts names: splitmix32 (as
 * rng.ts writes it: the golden-ratio increment, then two xor-shift-multiply rounds) for seeding, the low
 * and high 32 bits of the seed mixed, and xoshiro128** (Blackman and Vigna's reference C code) to draw.
 */
const M32 = 0xffffffffn;
const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M32;
const splitmix32 = (seed: bigint) => {
  let s = seed & M32;
  return () => {
    s = (s + 0x9e3779b9n) & M32;
    let z = s;
    z = ((z ^ (z >> 16n)) * 0x21f0aaadn) & M32;
    z = ((z ^ (z >> 15n)) * 0x735a2d97n) & M32;
    return (z ^ (z >> 15n)) & M32;
  };
};
const referenceStream = (state: bigint[], n: number): number[] => {
  const s = [...state];
  return Array.from({ length: n }, () => {
    const result = (rotl((s[1] * 5n) & M32, 7n) * 9n) & M32;
    const t = (s[1] << 9n) & M32;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11n);
    return Number(result);
  });
};
const referenceSeeded = (seed: number, n: number): number[] => {
  const low = splitmix32(BigInt(seed) & M32);
  const mix = splitmix32((BigInt(seed) >> 32n) ^ 0x5bd1e995n);
  return referenceStream([0, 1, 2, 3].map(() => low() ^ mix()), n);
};

Deno.test("streams are xoshiro128** seeded through splitmix32 (independent reference); seeds differ", () => {
  const draw = (r: Rng, n = 5) => Array.from({ length: n }, () => r.nextUint32());
  // By hand from the algorithm: state [1, 2, 3, 4] gives rotl(2 * 5, 7) * 9 = 1280 * 9 first.
  assertEquals(draw(Rng.fromState([1, 2, 3, 4]), 1), [11520]);
  assertEquals(draw(Rng.fromState([1, 2, 3, 4]), 50), referenceStream([1n, 2n, 3n, 4n], 50));
  for (const seed of [0, 1, 42, 2 ** 32 + 1, 2 ** 53 - 1]) {
    assertEquals(draw(Rng.seeded(seed), 20), referenceSeeded(seed, 20), `seed ${seed}`);
  }
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

Deno.test("shuffle is the Fisher-Yates permutation of the generator's draws", () => {
  const xs = Array.from({ length: 50 }, (_, i) => i);
  const a = Rng.seeded(5).shuffle([...xs]);
  // Reference: swap position i (from the end) with j = floor(u * (i + 1)), u the next reference draw.
  const draws = referenceSeeded(5, xs.length);
  const expected = [...xs];
  for (let i = expected.length - 1, k = 0; i > 0; i--, k++) {
    const j = Math.floor((draws[k] / 2 ** 32) * (i + 1));
    [expected[i], expected[j]] = [expected[j], expected[i]];
  }
  assertEquals(a, expected);
  assertEquals([...a].sort((p, q) => p - q), xs);
  assertNotEquals(a, xs);
});
