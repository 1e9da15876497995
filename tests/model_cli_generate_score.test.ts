/**
 * The `generate` and `score` commands on a checkpoint directory with tokenizer files: --prompt/--text go
 * through the tokenizer, stop strings cut the text, sampling is reproducible by seed, and bad requests
 * are InvalidConfig naming the flag. (Agreement with PyTorch: tests/model_hf_goldens.test.ts.)
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Exit } from "effect";
import { runGenerate } from "../src/cli/generate.ts";
import { runScore } from "../src/cli/score.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { InvalidConfig } from "../src/errors.ts";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.ts";
import { generate } from "../src/model/generate.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

const fixtures = new URL("../fixtures/arith/", import.meta.url).pathname;
const tokenizer = await Effect.runPromise(loadTokenizer(`${fixtures}tokenizer.json`));
const dir = await Deno.makeTempDir();
{
  const config = tinyConfig({ vocabSize: tokenizer.vocabSize, maxPositions: 128 });
  const params = initParams(config, Rng.seeded(4));
  params.forEach((v) => {
    if (v.rank > 1) tf.tidy(() => v.assign(tf.mul(v, 30)));
  });
  await Effect.runPromise(saveCheckpoint(dir, config, params, {}, { copySideFilesFrom: fixtures }));
  disposeParams(params);
}

const failure = async <E>(effect: Effect.Effect<unknown, E>): Promise<E> => {
  const exit = await Effect.runPromiseExit(effect);
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a failure, got ${exit}`);
  return exit.cause.error;
};

Deno.test("score --text tokenises without special tokens and equals score --ids", async () => {
  const text = "What is 12 + 7?\n";
  const byText = await Effect.runPromise(runScore({ model: dir, text }));
  const ids = tokenizer.encode(text);
  assertEquals(byText.tokens.map((t) => t.id), ids);
  assertEquals(byText.tokens.map((t) => t.text).join(""), text);
  const byIds = await Effect.runPromise(runScore({ model: dir, ids: ids.join(",") }));
  assertEquals(byIds, byText);
  assert(byText.tokens.slice(1).every((t) => t.logprob! < 0 && Number.isFinite(t.logprob)));
});

Deno.test("generate --prompt decodes its ids; stop strings cut the text; seeds reproduce samples", async () => {
  const prompt = "What is 3 + 4?\n";
  const free = await Effect.runPromise(runGenerate({ model: dir, prompt, maxNewTokens: 12 }));
  assertEquals(free.text, tokenizer.decode(free.ids));
  assert(free.ids.length > 3 && new Set(free.ids).size > 1, `degenerate output ${free.ids}`);
  // A stop string taken from inside the free continuation: the output ends right before it.
  const at = Math.floor(free.text!.length / 2);
  const stop = free.text!.slice(at, at + 2);
  const cut = await Effect.runPromise(runGenerate({ model: dir, prompt, maxNewTokens: 12, stop: [stop] }));
  assertEquals(cut.text, free.text!.slice(0, free.text!.indexOf(stop)));
  assertEquals(cut.ids, free.ids.slice(0, cut.ids.length));
  assert(cut.ids.length < free.ids.length && tokenizer.decode(cut.ids).includes(stop));

  const sampled = (seed: number) =>
    Effect.runPromise(
      runGenerate({ model: dir, prompt, maxNewTokens: 12, temperature: 1.2, topP: 0.9, seed }),
    );
  // The seed, temperature and top-p reach the sampler: the library's sampling of the same checkpoint.
  const { config, params } = await Effect.runPromise(loadCheckpoint(dir));
  const [expected] = generate(params, config, [tokenizer.encode(prompt)], {
    maxNewTokens: 12,
    eosId: tokenizer.eosId,
    temperature: 1.2,
    topP: 0.9,
    rng: Rng.seeded(1),
  });
  disposeParams(params);
  assertEquals((await sampled(1)).ids, expected);
  const variety = new Set(
    await Promise.all([1, 2, 3, 4, 5].map(async (s) => (await sampled(s)).ids.join(","))),
  );
  assert(variety.size > 1, "different seeds gave identical samples");
});

Deno.test("bad requests are InvalidConfig naming the flag", async () => {
  const cases: Array<[Parameters<typeof runGenerate>[0], string]> = [
    [{ model: dir, maxNewTokens: 3 }, "--prompt"],
    [{ model: dir, prompt: "a", ids: "1", maxNewTokens: 3 }, "--prompt"],
    [{ model: dir, ids: "1,x", maxNewTokens: 3 }, "--ids"],
    [{ model: dir, ids: `1,${tokenizer.vocabSize}`, maxNewTokens: 3 }, "--ids"],
    [{ model: dir, ids: "1", maxNewTokens: -1 }, "--max-new-tokens"],
    [{ model: dir, ids: "1", maxNewTokens: 3, topP: 1.5 }, "--top-p"],
    [{ model: dir, ids: "1", maxNewTokens: 3, temperature: -1 }, "--temperature"],
  ];
  for (const [req, where] of cases) {
    const e = await failure(runGenerate(req));
    assert(
      e instanceof InvalidConfig && e.where.includes(where),
      `${JSON.stringify(req)}: ${JSON.stringify(e)}`,
    );
  }
  const noTokenizer = new URL("../fixtures/goldens/llama", import.meta.url).pathname;
  const e = await failure(runScore({ model: noTokenizer, text: "hi" }));
  assert(e instanceof InvalidConfig && e.reason.includes("--ids"), JSON.stringify(e));
});

Deno.test("score logprobs are log-softmax of the logits: they sum with the rest of the vocabulary to 1", async () => {
  // One-token continuation probabilities over the whole vocabulary must sum to 1 for the first position.
  const ids = tokenizer.encode("7 + 5 = 12");
  const scored = await Effect.runPromise(runScore({ model: dir, ids: ids.join(",") }));
  let total = 0;
  for (let v = 0; v < tokenizer.vocabSize; v++) {
    const r = await Effect.runPromise(runScore({ model: dir, ids: `${ids[0]},${v}` }));
    total += Math.exp(r.tokens[1].logprob!);
  }
  assertAlmostEquals(total, 1, 1e-5);
  assertEquals(scored.tokens.length, ids.length);
});

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
