/**
 * Vocabulary growth (the addTokens step) for every architecture, tied and untied: the raw logits of every
 * old token id are bit-identical after the resize, new rows are the mean of the old ones, the saved
 * checkpoint reloads with the new vocabulary size (config.json's vocab_size = embedding rows), and the 16
 * functional tokens are special added tokens that encode as single ids and decode back, for a
 * tokenizer.json and for a vocab.json + merges.txt pair, and when the new ids fall inside an embedding
 * padded beyond its tokenizer.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Exit } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";
import { FUNCTIONAL_TOKENS, renderTrace } from "../src/data/functional_tokens.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { disposeParams, forward, initParams, type Params } from "../src/model/model.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { ADD_FUNCTIONAL_TOKENS, addTokensStep } from "../src/steps/add_tokens.ts";
import { Rng } from "../src/util/rng.ts";

await tf.setBackend("cpu");

const fixture = new URL("../fixtures/arith/", import.meta.url).pathname;
const OLD = 324; // the arith tokenizer's ids: 323 BPE tokens and <|endoftext|>

const runStep = (model: string, out: string, tokenizer?: string) =>
  Effect.runPromiseExit(Effect.scoped(addTokensStep.run(ADD_FUNCTIONAL_TOKENS, { model, tokenizer }, {
    dir: out,
    resumed: false,
    node: "addTokens",
    reporter: silentReporter(),
    backend: "cpu",
  })));

const logits = (params: Params, c: ModelConfig, ids: number[]) => {
  const x = tf.tensor2d([ids], [1, ids.length], "int32");
  const y = forward(params, c, x);
  const out = y.dataSync() as Float32Array;
  const copy = Float32Array.from(out);
  tf.dispose([x, y]);
  return copy;
};

/** Columns [0, old) of [time, vocab] logits, as bytes. */
const oldColumns = (data: Float32Array, vocab: number, time: number, old: number) => {
  const out = new Float32Array(time * old);
  for (let t = 0; t < time; t++) out.set(data.subarray(t * vocab, t * vocab + old), t * old);
  return new Uint8Array(out.buffer);
};

const meanRows = (data: Float32Array, rows: number, width: number) =>
  Array.from({ length: width }, (_, j) => {
    let s = 0;
    for (let r = 0; r < rows; r++) s += data[r * width + j];
    return Math.fround(s / rows);
  });

const variants: Array<[string, Partial<ModelConfig>]> = [
  ["llama untied", { architecture: "llama", tieEmbeddings: false }],
  ["llama tied", { architecture: "llama", tieEmbeddings: true }],
  ["mistral", { architecture: "mistral", tieEmbeddings: false }],
  ["qwen2 tied", { architecture: "qwen2", tieEmbeddings: true }],
  ["qwen3", { architecture: "qwen3", tieEmbeddings: false, headDim: 8 }],
  ["gpt2 tied", { architecture: "gpt2", tieEmbeddings: true, numKvHeads: 4 }],
  ["gpt2 untied", { architecture: "gpt2", tieEmbeddings: false, numKvHeads: 4 }],
];

const makeCheckpoint = async (dir: string, c: ModelConfig, seed: number, files: Record<string, string>) => {
  const params = initParams(c, Rng.seeded(seed));
  await Effect.runPromise(saveCheckpoint(dir, c, params, files));
  return params;
};

const fixtureFiles = async () => ({
  "tokenizer.json": await Deno.readTextFile(`${fixture}tokenizer.json`),
  "tokenizer_config.json": await Deno.readTextFile(`${fixture}tokenizer_config.json`),
});

const sample = [3, 17, 250, 0, 323, 99, 12];

Deno.test("addTokens: every architecture keeps old logits bit-identical and reloads with 340 rows", async () => {
  const tmp = await Deno.makeTempDir();
  for (const [i, [name, overrides]] of variants.entries()) {
    const c = tinyConfig({ ...overrides, vocabSize: OLD });
    const params = await makeCheckpoint(`${tmp}/${i}/in`, c, i + 1, await fixtureFiles());
    const before = logits(params, c, sample);
    const exit = await runStep(`${tmp}/${i}/in`, `${tmp}/${i}/out`);
    assert(Exit.isSuccess(exit), `${name}: ${exit}`);
    const dir = `${tmp}/${i}/out/model`;
    const loaded = await Effect.runPromise(loadCheckpoint(dir));
    assertEquals(loaded.config.vocabSize, OLD + 16, name);
    assertEquals(loaded.config.tieEmbeddings, c.tieEmbeddings, name);
    const hf = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assertEquals(hf.vocab_size, OLD + 16);
    const after = logits(loaded.params, loaded.config, sample);
    assertEquals(
      oldColumns(after, OLD + 16, sample.length, OLD),
      oldColumns(before, OLD, sample.length, OLD),
      name,
    );
    // New rows: the mean of the old rows, in the embedding and in an untied head.
    const matrices = [c.architecture === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight"];
    if (!c.tieEmbeddings) matrices.push("lm_head.weight");
    for (const m of matrices) {
      const oldData = params.get(m)!.dataSync() as Float32Array;
      const newData = loaded.params.get(m)!.dataSync() as Float32Array;
      const d = c.hiddenSize;
      assertEquals([...newData.subarray(0, OLD * d)], [...oldData], `${name} ${m} old rows`);
      const mean = meanRows(oldData, OLD, d);
      for (let r = OLD; r < OLD + 16; r++) {
        assertEquals([...newData.subarray(r * d, (r + 1) * d)], mean, `${name} ${m} row ${r}`);
      }
    }
    // Every other parameter is unchanged.
    for (const [p, v] of params) {
      if (!matrices.includes(p)) {
        assertEquals([...loaded.params.get(p)!.dataSync()], [...v.dataSync()], `${name} ${p}`);
      }
    }
    disposeParams(params);
    disposeParams(loaded.params);
  }
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("addTokens: the functional tokens are special added tokens, one id each, both ways", async () => {
  const tmp = await Deno.makeTempDir();
  const c = tinyConfig({ vocabSize: OLD });
  disposeParams(await makeCheckpoint(`${tmp}/in`, c, 5, await fixtureFiles()));
  assert(Exit.isSuccess(await runStep(`${tmp}/in`, `${tmp}/out`)));
  const dir = `${tmp}/out/model`;
  const json = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer.json`));
  const added = json.added_tokens.filter((t: { content: string }) => FUNCTIONAL_TOKENS.includes(t.content));
  assertEquals(added.map((t: { id: number }) => t.id), FUNCTIONAL_TOKENS.map((_, i) => OLD + i));
  assert(added.every((t: { special: boolean; normalized: boolean }) => t.special && !t.normalized));
  const config = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
  assertEquals(config.additional_special_tokens, [...FUNCTIONAL_TOKENS]);
  assertEquals(config.added_tokens_decoder[String(OLD)].content, "<clarify>");
  const tok = await Effect.runPromise(loadTokenizer(dir));
  assertEquals(tok.vocabSize, OLD + 16);
  FUNCTIONAL_TOKENS.forEach((t, i) => {
    assertEquals(tok.encode(t), [OLD + i]);
    assertEquals(tok.decode([OLD + i]), t);
  });
  // In a trace, each tag is one id and the text round-trips; the old tokens encode as before.
  const text = renderTrace([{ tag: "next_step", content: "9-3=6" }, { tag: "output", content: "6" }]);
  const ids = tok.encode(text);
  assertEquals(ids.filter((id) => id >= OLD), [OLD + 6, OLD + 7, OLD + 14, OLD + 15]);
  assertEquals(tok.decode(ids), text);
  const before = await Effect.runPromise(loadTokenizer(`${fixture}tokenizer.json`));
  assertEquals(tok.encode("What is 9 - 3 + 2?\n9-3=6"), before.encode("What is 9 - 3 + 2?\n9-3=6"));
  const report = JSON.parse(await Deno.readTextFile(`${tmp}/out/report.json`));
  assertEquals([report.oldVocabSize, report.newVocabSize, report.tokens["</output>"]], [
    OLD,
    OLD + 16,
    OLD + 15,
  ]);
  // Adding them again is refused: one text cannot have two ids.
  const again = await runStep(dir, `${tmp}/again`);
  assert(
    Exit.isFailure(again) && again.cause._tag === "Fail" && again.cause.error._tag === "TokenizerMismatch",
  );
  assert(String(again.cause.error.reason).includes("already in the vocabulary"));
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("addTokens: a vocab.json + merges.txt tokenizer records them in added_tokens_decoder", async () => {
  const tmp = await Deno.makeTempDir();
  const fast = JSON.parse(await Deno.readTextFile(`${fixture}tokenizer.json`));
  const merges = (fast.model.merges as Array<string | [string, string]>).map((m) =>
    Array.isArray(m) ? m.join(" ") : m
  );
  await Deno.mkdir(`${tmp}/tok`);
  await Deno.writeTextFile(`${tmp}/tok/vocab.json`, JSON.stringify(fast.model.vocab));
  await Deno.writeTextFile(`${tmp}/tok/merges.txt`, `#version: 0.2\n${merges.join("\n")}\n`);
  await Deno.writeTextFile(
    `${tmp}/tok/tokenizer_config.json`,
    JSON.stringify({ tokenizer_class: "GPT2Tokenizer", eos_token: "<|endoftext|>" }),
  );
  const slow = await Effect.runPromise(loadTokenizer(`${tmp}/tok`));
  assertEquals([slow.vocabSize, slow.eosId], [OLD, 323]);
  const c = tinyConfig({ vocabSize: OLD, architecture: "qwen2", tieEmbeddings: true });
  disposeParams(await makeCheckpoint(`${tmp}/in`, c, 9, {}));
  const exit = await runStep(`${tmp}/in`, `${tmp}/out`, `${tmp}/tok`);
  assert(Exit.isSuccess(exit), String(exit));
  const dir = `${tmp}/out/model`;
  assert(await Deno.stat(`${dir}/vocab.json`).then(() => true), "vocab.json travels with the checkpoint");
  const config = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
  // The pair's own added token keeps its id, written out explicitly, and the new ones follow it.
  assertEquals(config.added_tokens_decoder["323"].content, "<|endoftext|>");
  FUNCTIONAL_TOKENS.forEach((t, i) => assertEquals(config.added_tokens_decoder[String(OLD + i)].content, t));
  const tok = await Effect.runPromise(loadTokenizer(dir));
  assertEquals([tok.vocabSize, tok.eosId], [OLD + 16, 323]);
  FUNCTIONAL_TOKENS.forEach((t, i) => {
    assertEquals(tok.encode(`x${t}y`).includes(OLD + i), true);
    assertEquals(tok.encode(t), [OLD + i]);
    assertEquals(tok.decode([OLD + i]), t);
  });
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("addTokens: new ids inside a padded embedding reuse its rows, re-initialised to the mean", async () => {
  const tmp = await Deno.makeTempDir();
  const padded = OLD + 6; // rows 324..329 exist but no token has them
  const c = tinyConfig({ vocabSize: padded });
  const params = await makeCheckpoint(`${tmp}/in`, c, 11, await fixtureFiles());
  const before = logits(params, c, sample);
  assert(Exit.isSuccess(await runStep(`${tmp}/in`, `${tmp}/out`)));
  const loaded = await Effect.runPromise(loadCheckpoint(`${tmp}/out/model`));
  assertEquals(loaded.config.vocabSize, OLD + 16);
  const after = logits(loaded.params, loaded.config, sample);
  assertEquals(
    oldColumns(after, OLD + 16, sample.length, OLD),
    oldColumns(before, padded, sample.length, OLD),
  );
  const d = c.hiddenSize;
  for (const m of ["model.embed_tokens.weight", "lm_head.weight"]) {
    const oldData = params.get(m)!.dataSync() as Float32Array;
    const newData = loaded.params.get(m)!.dataSync() as Float32Array;
    const mean = meanRows(oldData, padded, d);
    for (let r = OLD; r < OLD + 16; r++) {
      assertEquals([...newData.subarray(r * d, (r + 1) * d)], mean, `${m} row ${r}`);
    }
  }
  disposeParams(params);
  disposeParams(loaded.params);
  await Deno.remove(tmp, { recursive: true });
});
