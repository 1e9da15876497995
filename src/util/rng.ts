/**
 * A small deterministic PRNG (xoshiro128**, seeded through splitmix32) whose whole state is four uint32
 * numbers. Everything random in the toolkit (parameter init, data order, sampling) draws from one of these,
 * so saving `state()` next to a checkpoint and restoring it with `Rng.fromState` makes a resumed run draw
 * exactly the numbers the uninterrupted run would have drawn.
 *
 * `Math.random` is never used: it cannot be seeded or saved.
 */

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

/** splitmix32: spreads a (possibly small, possibly sequential) seed over all 32 bits. */
const splitmix32 = (seed: number): () => number => {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  };
};

/** True when `x` is a state `Rng.fromState` accepts: four uint32 integers, not all zero. */
export const isRngState = (x: unknown): x is number[] =>
  Array.isArray(x) && x.length === 4 &&
  x.every((v) => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) &&
  x.some((v) => v !== 0);

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  private constructor(state: ReadonlyArray<number>) {
    this.s0 = state[0] >>> 0;
    this.s1 = state[1] >>> 0;
    this.s2 = state[2] >>> 0;
    this.s3 = state[3] >>> 0;
  }

  /** A generator from an integer seed; both the low and the high 32 bits of the seed matter. */
  static seeded(seed: number): Rng {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Rng seed must be a safe integer, got ${seed}`);
    const low = splitmix32(seed >>> 0);
    const high = Math.floor(seed / 0x100000000) >>> 0;
    // Mixing the high word into every state word keeps seeds 1 and 2^32 + 1 apart.
    const mix = splitmix32(high ^ 0x5bd1e995);
    const state: number[] = Array.from({ length: 4 }, () => (low() ^ mix()) >>> 0);
    // xoshiro must not start from all zeros (it would stay there); splitmix makes this practically
    // impossible, the guard makes it impossible.
    if (!state.some((v) => v !== 0)) state[0] = 1;
    return new Rng(state);
  }

  /** Restores a generator saved with `state()`. Throws RangeError on a malformed state. */
  static fromState(state: ReadonlyArray<number>): Rng {
    if (!isRngState(state)) {
      throw new RangeError(
        `Rng state must be four uint32 numbers, not all zero; got ${JSON.stringify(state)}`,
      );
    }
    return new Rng(state);
  }

  /** The complete state: four uint32 numbers (JSON-safe). */
  state(): number[] {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /** An independent copy at the same position. */
  clone(): Rng {
    return new Rng(this.state());
  }

  /** Next raw 32-bit output (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / 0x100000000;
  }

  /**
   * Uniform integer in [0, n). Uses floor(next() * n): the bias is below n / 2^32, irrelevant for the
   * dataset and vocabulary sizes this is used with.
   */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) {
      throw new RangeError(`Rng.int needs an integer in [1, 2^32], got ${n}`);
    }
    return Math.floor(this.next() * n);
  }

  /**
   * Standard normal sample (Box-Muller). Draws two uniforms and uses only the cosine branch, so the
   * state stays four numbers (no cached spare to save).
   */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: log(0) would be -Infinity
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Fisher-Yates shuffle, in place; returns the same array for convenience. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = xs[i];
      xs[i] = xs[j];
      xs[j] = tmp;
    }
    return xs;
  }
}

/**
 * mulberry32: a tiny seeded generator of floats in [0, 1), for the synthetic data generators (the fixtures'
 * tools and the pretraining corpus). Their committed outputs are pinned to its stream, so they keep it rather
 * than `Rng`, whose state is what training checkpoints.
 */
export const mulberry32 = (seed: number): () => number => {
  let s = seed >>> 0;
  return (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};
