/**
 * The LoRA command line: `merge` (src/cli/merge.ts) writes a checkpoint that `score` agrees with when
 * scoring the base with `--adapter`, and the --lora flags (src/cli/lora_flags.ts) give the train step's
 * settings or a typed error.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Option } from "effect";
import { decodeModelConfig } from "../src/model/config.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { attachFreshAdapter, defaultTargets } from "../src/model/lora.ts";
import { disposeParams, initParams, paramShapes } from "../src/model/model.ts";
import { saveAdapter } from "../src/model/peft.ts";
import { runMerge } from "../src/cli/merge.ts";
import { runScore } from "../src/cli/score.ts";
import { loraFromFlags } from "../src/cli/lora_flags.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "./assert.ts";

await tf.setBackend("cpu");

Deno.test("merge: the merged checkpoint scores like base + --adapter, and unlike the base alone", async () => {
  const c = Effect.runSync(decodeModelConfig({
    architecture: "qwen2",
    vocabSize: 50,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 32,
    maxPositions: 64,
    tieEmbeddings: true,
  }, "test"));
  const dir = await Deno.makeTempDir({ prefix: "lora-merge-" });
  const params = initParams(c, Rng.seeded(1));
  await Effect.runPromise(saveCheckpoint(`${dir}/base`, c, params));
  const settings = { r: 4, alpha: 8, dropout: 0 };
  attachFreshAdapter(params, c, paramShapes(c), settings, Rng.seeded(2));
  const rng = Rng.seeded(3);
  for (const [name, v] of params) {
    if (name.includes("lora_B")) {
      v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal()), v.shape));
    }
  }
  await Effect.runPromise(
    saveAdapter(`${dir}/adapter`, c, params, settings, defaultTargets(c), `${dir}/base`),
  );
  disposeParams(params);

  const { modules } = await Effect.runPromise(
    runMerge({ model: `${dir}/base`, adapter: `${dir}/adapter`, out: `${dir}/merged` }),
  );
  assertEquals(modules, 2 * 7);
  const ids = "3,14,15,9,26,5,35";
  const score = (model: string, adapter?: string) =>
    Effect.runPromise(runScore({ model, adapter, ids })).then((r) => r.tokens.map((t) => t.logprob ?? 0));
  const merged = await score(`${dir}/merged`);
  const adapted = await score(`${dir}/base`, `${dir}/adapter`);
  const base = await score(`${dir}/base`);
  const diff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  assert(diff(merged, adapted) <= 1e-4, `merged vs adapted: ${diff(merged, adapted)}`);
  assert(diff(merged, base) > 1e-3, "the adapter changes the scores");
});

const flags = (over: Partial<Parameters<typeof loraFromFlags>[0]>) => ({
  lora: false,
  loraR: Option.none(),
  loraAlpha: Option.none(),
  loraDropout: Option.none(),
  loraTargets: Option.none(),
  useRslora: false,
  ...over,
});

Deno.test("lora flags: absent without --lora, defaults with it, the given values otherwise", () => {
  assertEquals(Effect.runSync(loraFromFlags(flags({}))), undefined);
  assertEquals(Effect.runSync(loraFromFlags(flags({ lora: true }))), { r: 8, alpha: 16, dropout: 0 });
  assertEquals(
    Effect.runSync(loraFromFlags(flags({
      lora: true,
      loraR: Option.some(4),
      loraAlpha: Option.some(4),
      loraDropout: Option.some(0.1),
      loraTargets: Option.some("q_proj, v_proj"),
      useRslora: true,
    }))),
    { r: 4, alpha: 4, dropout: 0.1, targets: ["q_proj", "v_proj"], useRslora: true },
  );
});

Deno.test("lora flags: a setting without --lora, or out of range, is an InvalidConfig naming the flag", () => {
  const fails = (f: ReturnType<typeof flags>, where: string) => {
    const e = Effect.runSync(Effect.flip(loraFromFlags(f)));
    assertEquals([e._tag, e.where], ["InvalidConfig", where]);
  };
  fails(flags({ loraR: Option.some(4) }), "--lora-r");
  fails(flags({ useRslora: true }), "--use-rslora");
  fails(flags({ lora: true, loraR: Option.some(0) }), "--lora-r");
  fails(flags({ lora: true, loraDropout: Option.some(1) }), "--lora-dropout");
  fails(flags({ lora: true, loraTargets: Option.some(" , ") }), "--lora-targets");
});
