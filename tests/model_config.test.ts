import { Effect, Exit } from "effect";
import { decodeModelConfig, fromHfConfig, toHfConfig } from "../src/model/config.ts";
import { CheckpointMalformed, InvalidConfig } from "../src/errors.ts";
import { assert, assertEquals } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";

const failure = <E>(effect: Effect.Effect<unknown, E>): E => {
  const exit = Effect.runSyncExit(effect);
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a failure, got ${exit}`);
  return exit.cause.error;
};

Deno.test("defaults fill in; invalid shapes and unknown fields are InvalidConfig with a location", () => {
  const c = tinyConfig();
  assertEquals(c.ropeTheta, 10000);
  assertEquals(c.rmsNormEps, 1e-5);
  const base = { ...c } as Record<string, unknown>;
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ ...base, hiddenSize: 18 }, "divisible by numHeads"],
    [{ ...base, numKvHeads: 3 }, "divisible by numKvHeads"],
    [{ ...base, hiddenSize: 12, numHeads: 4, numKvHeads: 4 }, "must be even"],
    [{ ...base, numLayers: 0 }, "numLayers"],
    [{ ...base, vocabSize: 2.5 }, "vocabSize"],
    [{ ...base, dropout: 0.1 }, "dropout"],
    [{ ...base, architecture: "gpt2" }, "architecture"],
  ];
  for (const [input, mention] of cases) {
    const e = failure(decodeModelConfig(input, "pipeline.json model"));
    assert(e instanceof InvalidConfig);
    assert(`${e.where} ${e.reason}`.includes(mention), `${e.where}: ${e.reason} should mention ${mention}`);
    assert(e.where.startsWith("pipeline.json model"));
  }
});

Deno.test("toHfConfig / fromHfConfig round-trip and write LlamaForCausalLM fields", () => {
  const c = tinyConfig({ tieEmbeddings: true, ropeTheta: 500000 });
  const hf = toHfConfig(c);
  assertEquals(hf.architectures, ["LlamaForCausalLM"]);
  assertEquals(hf.head_dim, 4);
  assertEquals(hf.hidden_act, "silu");
  assertEquals(hf.torch_dtype, "float32");
  assertEquals(hf.num_key_value_heads, 2);
  assertEquals(Effect.runSync(fromHfConfig(JSON.parse(JSON.stringify(hf)), "config.json")), c);
});

Deno.test("fromHfConfig applies LlamaConfig defaults and refuses what it cannot compute", () => {
  const minimal = {
    model_type: "llama",
    vocab_size: 32,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 1,
    num_attention_heads: 4,
  };
  const c = Effect.runSync(fromHfConfig(minimal, "config.json"));
  assertEquals([c.numKvHeads, c.rmsNormEps, c.ropeTheta, c.tieEmbeddings, c.maxPositions], [
    4,
    1e-6,
    10000,
    false,
    2048,
  ]);
  const v5 = { ...minimal, rope_parameters: { rope_type: "default", rope_theta: 1234 } };
  assertEquals(Effect.runSync(fromHfConfig(v5, "config.json")).ropeTheta, 1234);

  const refused: Array<[Record<string, unknown>, string]> = [
    [{ ...minimal, rope_scaling: { type: "linear", factor: 2 } }, "rope_scaling"],
    [{ ...minimal, rope_parameters: { rope_type: "llama3" } }, "rope_parameters"],
    [{ ...minimal, hidden_act: "gelu" }, "hidden_act"],
    [{ ...minimal, architectures: ["MistralForCausalLM"] }, "MistralForCausalLM"],
    [{ ...minimal, model_type: "gpt2" }, "gpt2"],
    [{ ...minimal, attention_bias: true }, "attention_bias"],
    [{ ...minimal, head_dim: 8 }, "head_dim"],
    [{ ...minimal, num_key_value_heads: 3 }, "num_key_value_heads"],
    [{ ...minimal, vocab_size: "many" }, "vocab_size"],
  ];
  for (const [json, mention] of refused) {
    const e = failure(fromHfConfig(json, "ckpt/config.json"));
    assert(e instanceof CheckpointMalformed);
    assertEquals(e.path, "ckpt/config.json");
    assert(e.reason.includes(mention), `${e.reason} should mention ${mention}`);
  }
});
