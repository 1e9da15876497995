import * as tf from "@tensorflow/tfjs";
import { generate } from "../src/model/generate.ts";
import { createCache, forward, initParams, type Params } from "../src/model/model.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

const config = tinyConfig({ vocabSize: 24 });

/** Larger-than-default weights so greedy continuations are not all the same token. */
const model = (seed: number): Params => {
  const params = initParams(config, Rng.seeded(seed));
  params.forEach((v) => {
    if (v.rank > 1) tf.tidy(() => v.assign(tf.mul(v, 25)));
  });
  return params;
};

/** Greedy decoding the slow way: the whole sequence through `forward` for every new token. */
const greedyRecompute = (params: Params, prompt: number[], n: number): number[] => {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const last = tf.tidy(() => {
      const logits = forward(params, config, tf.tensor2d([seq], undefined, "int32"));
      return tf.argMax(tf.squeeze(tf.slice(logits, [0, seq.length - 1, 0], [1, 1, -1]))).dataSync()[0];
    });
    seq.push(last);
  }
  return seq.slice(prompt.length);
};

const prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10], [11, 3, 3, 12]];

Deno.test("greedy with the KV cache equals recomputing the full forward each step", () => {
  const params = model(1);
  const before = tf.memory().numTensors;
  for (const p of prompts) {
    const fast = generate(params, config, [p], { maxNewTokens: 8 })[0];
    assertEquals(fast, greedyRecompute(params, p, 8));
  }
  assert(new Set(generate(params, config, prompts, { maxNewTokens: 8 }).flat()).size > 2, "degenerate model");
  assertEquals(tf.memory().numTensors, before);
  params.forEach((v) => v.dispose());
});

Deno.test("cached logits are bit-identical to the full forward pass, with left padding", () => {
  const params = model(2);
  tf.tidy(() => {
    const seq = [3, 1, 4, 1, 5, 9];
    const full = forward(params, config, tf.tensor2d([seq], undefined, "int32")).arraySync() as number[][][];
    // row 0 is seq after 2 padding slots, row 1 a different sequence; feed 4 tokens then one at a time
    const cache = createCache(config, 2, 8, [2, 0]);
    const padded = [[0, 0, ...seq.slice(0, 2)], [7, 7, 7, 7]];
    const first = forward(params, config, tf.tensor2d(padded, undefined, "int32"), cache)
      .arraySync() as number[][][];
    assertEquals(first[0][3], full[0][1]);
    for (let t = 2; t < seq.length; t++) {
      const step = forward(params, config, tf.tensor2d([[seq[t]], [7]], undefined, "int32"), cache, {
        lastPositionOnly: true,
      }).arraySync() as number[][][];
      assertEquals(step[0][0], full[0][t]);
    }
  });
  params.forEach((v) => v.dispose());
});

Deno.test("batched generation equals generating each row alone", () => {
  const params = model(3);
  const batched = generate(params, config, prompts, { maxNewTokens: 7 });
  prompts.forEach((p, i) => assertEquals(generate(params, config, [p], { maxNewTokens: 7 })[0], batched[i]));
  params.forEach((v) => v.dispose());
});

Deno.test("rows stop at EOS (not included), independently of each other", () => {
  const params = model(4);
  const free = generate(params, config, prompts, { maxNewTokens: 6 });
  const eos = free[1][2]; // row 1 produces this at its third step
  const stopped = generate(params, config, prompts, { maxNewTokens: 6, eosId: eos });
  free.forEach((row, i) => {
    const cut = row.indexOf(eos);
    assertEquals(stopped[i], cut < 0 ? row : row.slice(0, cut));
  });
  assert(stopped[1].length <= 2);
  assertEquals(generate(params, config, prompts, { maxNewTokens: 0 }), [[], [], [], []]);
  assertThrows(() => generate(params, config, [[]], { maxNewTokens: 2 }), RangeError);
  params.forEach((v) => v.dispose());
});

/**
 * Sampling the slow way: every step recomputes each row's full forward pass, and draws from
 * softmax(logits / temperature) by inverse CDF over the ids in order, rows drawing in turn.
 */
const sampleRecompute = (params: Params, ps: number[][], n: number, temperature: number, rng: Rng) => {
  const seqs = ps.map((p) => [...p]);
  for (let step = 0; step < n; step++) {
    for (const seq of seqs) {
      const logits = tf.tidy(() =>
        forward(params, config, tf.tensor2d([seq], undefined, "int32")).dataSync().slice(
          (seq.length - 1) * config.vocabSize,
        )
      );
      const max = Math.max(...logits);
      const weights = Array.from(logits, (x) => Math.exp((x - max) / temperature));
      let u = rng.next() * weights.reduce((a, b) => a + b, 0);
      let token = weights.findIndex((w) => (u -= w) < 0);
      if (token < 0) token = weights.length - 1;
      seq.push(token);
    }
  }
  return seqs.map((seq, i) => seq.slice(ps[i].length));
};

Deno.test("sampling draws from softmax(logits / T) with the given rng, and needs one", () => {
  const params = model(5);
  for (const temperature of [1, 0.5]) {
    const got = generate(params, config, prompts, { maxNewTokens: 5, temperature, rng: Rng.seeded(9) });
    assertEquals(got, sampleRecompute(params, prompts, 5, temperature, Rng.seeded(9)), `T = ${temperature}`);
    // Not greedy in disguise: sampling departs from the most probable tokens somewhere.
    assert(
      temperature !== 1 || got.some((row, i) => row.join() !== greedyRecompute(params, prompts[i], 5).join()),
    );
  }
  assertThrows(() => generate(params, config, prompts, { maxNewTokens: 5, temperature: 1 }), RangeError);
  params.forEach((v) => v.dispose());
});

Deno.test("top-p: a tiny nucleus is greedy, top-p 1 changes nothing, samples stay inside the nucleus", () => {
  const params = model(6);
  const greedy = generate(params, config, prompts, { maxNewTokens: 5 });
  const tiny = generate(params, config, prompts, {
    maxNewTokens: 5,
    temperature: 1,
    topP: 1e-6,
    rng: Rng.seeded(1),
  });
  assertEquals(tiny, greedy);
  const sample = (topP?: number) =>
    generate(params, config, prompts, { maxNewTokens: 5, temperature: 1.5, topP, rng: Rng.seeded(2) });
  assertEquals(sample(1), sample(undefined));

  // The nucleus of the first step for prompt 0, from the full forward pass.
  const logits = tf.tidy(() =>
    [...forward(params, config, tf.tensor2d([prompts[0]], undefined, "int32")).dataSync()].slice(
      (prompts[0].length - 1) * config.vocabSize,
    )
  );
  const max = Math.max(...logits);
  const p = logits.map((x) => Math.exp(x - max));
  const total = p.reduce((a, b) => a + b, 0);
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a]);
  const nucleus = new Set<number>();
  let mass = 0;
  for (const i of order) {
    if (mass >= 0.6 * total) break;
    nucleus.add(i);
    mass += p[i];
  }
  const seen = new Set<number>();
  for (let seed = 0; seed < 60; seed++) {
    seen.add(
      generate(params, config, [prompts[0]], {
        maxNewTokens: 1,
        temperature: 1,
        topP: 0.6,
        rng: Rng.seeded(seed),
      })[0][0],
    );
  }
  assert([...seen].every((t) => nucleus.has(t)), `sampled ${[...seen]} outside nucleus ${[...nucleus]}`);
  assert(nucleus.size > 1 && seen.size > 1, `nucleus ${[...nucleus]}, sampled ${[...seen]}`);
  assertThrows(
    () => generate(params, config, prompts, { maxNewTokens: 2, temperature: 1, topP: 0, rng: Rng.seeded(1) }),
    RangeError,
  );
  params.forEach((v) => v.dispose());
});

Deno.test("shouldStop ends a row after the token that satisfied it; eosId may be a list", () => {
  const params = model(7);
  const free = generate(params, config, prompts, { maxNewTokens: 6 });
  const stopped = generate(params, config, prompts, {
    maxNewTokens: 6,
    shouldStop: (row, tokens) => row === 1 && tokens.length === 2,
  });
  assertEquals(stopped[1], free[1].slice(0, 2));
  assertEquals(stopped[0], free[0]);
  const eos = [free[0][1], free[1][0]];
  const both = generate(params, config, prompts, { maxNewTokens: 6, eosId: eos });
  both.forEach((row, i) => {
    const cut = free[i].findIndex((t) => eos.includes(t));
    assertEquals(row, cut < 0 ? free[i] : free[i].slice(0, cut));
  });
  params.forEach((v) => v.dispose());
});
