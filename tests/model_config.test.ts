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
    [{ ...base, architecture: "falcon" }, "architecture"],
    [{ ...base, architecture: "gpt2" }, "numKvHeads"],
    [{ ...base, headDim: 5 }, "must be even"],
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
    [{ ...minimal, architectures: ["FalconForCausalLM"] }, "FalconForCausalLM"],
    [{ ...minimal, model_type: "gpt_neox" }, "gpt_neox"],
    [{ ...minimal, model_type: "gpt2" }, "n_positions"],
    [{ ...minimal, attention_bias: true }, "attention_bias"],
    [{ ...minimal, mlp_bias: true }, "mlp_bias"],
    [{ ...minimal, head_dim: 3 }, "must be even"],
    [{ ...minimal, rope_scaling: { rope_type: "yarn", factor: 4 } }, "rope_scaling"],
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

Deno.test("fromHfConfig reads Mistral, Qwen2, Qwen3 and GPT-2 configs with their classes' defaults", () => {
  const llamaLike = {
    vocab_size: 32,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
  };
  const read = (json: Record<string, unknown>) => Effect.runSync(fromHfConfig(json, "config.json"));
  const mistral = read({ ...llamaLike, architectures: ["MistralForCausalLM"] });
  assertEquals([mistral.architecture, mistral.slidingWindow], ["mistral", 4096]);
  assertEquals(read({ ...llamaLike, model_type: "mistral", sliding_window: null }).slidingWindow, undefined);
  const qwen2 = read({ ...llamaLike, model_type: "qwen2", sliding_window: 8, use_sliding_window: false });
  assertEquals([qwen2.architecture, qwen2.slidingWindow], ["qwen2", undefined]);
  assertEquals(
    read({ ...llamaLike, model_type: "qwen2", sliding_window: 8, use_sliding_window: true }).slidingWindow,
    8,
  );
  const qwen3 = read({ ...llamaLike, model_type: "qwen3" });
  assertEquals([qwen3.architecture, qwen3.headDim], ["qwen3", 128]);
  assertEquals(read({ ...llamaLike, model_type: "qwen3", head_dim: 4 }).headDim, undefined);
  const gpt2 = read({
    model_type: "gpt2",
    vocab_size: 50,
    n_positions: 32,
    n_embd: 16,
    n_layer: 2,
    n_head: 4,
  });
  assertEquals(
    [gpt2.architecture, gpt2.intermediateSize, gpt2.numKvHeads, gpt2.tieEmbeddings, gpt2.rmsNormEps],
    ["gpt2", 64, 4, true, 1e-5],
  );
  for (const c of [mistral, qwen2, qwen3, gpt2]) {
    assertEquals(read(JSON.parse(JSON.stringify(toHfConfig(c)))), c);
  }
  const gpt2Json = { model_type: "gpt2", vocab_size: 50, n_positions: 32, n_embd: 16, n_layer: 2, n_head: 4 };
  const refused: Array<[Record<string, unknown>, string]> = [
    [{ ...gpt2Json, activation_function: "relu" }, "activation_function"],
    [{ ...gpt2Json, activation_function: "gelu" }, "activation_function"],
    [{ ...gpt2Json, scale_attn_by_inverse_layer_idx: true }, "scale_attn_by_inverse_layer_idx"],
    [{ ...gpt2Json, n_head: 5 }, "n_embd"],
    [{ ...llamaLike, model_type: "qwen3", attention_bias: true }, "attention_bias"],
    [{ ...llamaLike, model_type: "mistral", hidden_act: "gelu" }, "hidden_act"],
  ];
  for (const [json, mention] of refused) {
    const e = failure(fromHfConfig(json, "config.json"));
    assert(
      e instanceof CheckpointMalformed && e.reason.includes(mention),
      `${e.reason} should mention ${mention}`,
    );
  }
});

Deno.test("toHfConfig keeps the source config's other fields and overrides the model's own", () => {
  const c = tinyConfig();
  const hf = toHfConfig(c, { eos_token_id: 7, hidden_size: 999, architectures: ["Old"] });
  assertEquals([hf.eos_token_id, hf.hidden_size, hf.architectures], [7, 16, ["LlamaForCausalLM"]]);
});
