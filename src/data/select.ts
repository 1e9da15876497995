/**
 * Stable seeded selection of examples: a hash of (seed, token ids) mapped to [0, 1). The same example
 * gets the same number in every run and whatever the data order, so "the 90% of examples trained on
 * their prefix" or "the 256 examples searched for critical tokens" never depend on file order or on
 * anything but the seed and the example itself.
 */

/** FNV-1a (32 bit) over the seed and the ids, each as 4 little-endian bytes, scaled to [0, 1). */
export const hashUnit = (seed: number, ids: ReadonlyArray<number>): number => {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    for (let b = 0; b < 4; b++) {
      h ^= (x >>> (8 * b)) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
  };
  mix(seed);
  ids.forEach(mix);
  return (h >>> 0) / 2 ** 32;
};

/** Indices of the `n` items with the smallest hash (all of them, in hash order, when n >= length). */
export const stableSubset = (seed: number, keys: ReadonlyArray<ReadonlyArray<number>>, n: number): number[] =>
  keys.map((k, i) => ({ i, u: hashUnit(seed, k) }))
    .sort((a, b) => a.u - b.u || a.i - b.i)
    .slice(0, n)
    .map((x) => x.i);
