/**
 * The Llama-family decoder (HF LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM):
 * token embedding, then per layer
 *   x += o_proj(attention(rope(qn(q_proj(norm(x)))), rope(kn(k_proj(..))), v_proj(..)))
 *   x += down_proj(silu(gate_proj(norm(x))) * up_proj(norm(x)))
 * a final RMSNorm and the LM head. Qwen2 adds biases to q/k/v_proj; Qwen3 applies an RMSNorm over each
 * head of q and k (qn, kn) before RoPE. Mistral computes exactly like Llama within its sliding window
 * (./model.ts refuses longer sequences).
 */
import * as tf from "@tensorflow/tfjs";
import { cachedAttention } from "./cache.ts";
import { headDim, type ModelConfig } from "./config.ts";
import type { Decoder, DecoderInput } from "./decoder.ts";
import {
  addBias,
  causalAttention,
  embedding,
  linear,
  rmsNorm,
  rope,
  type RopeTables,
  ropeTables,
  swiglu,
} from "./ops.ts";
import { withLora } from "./lora.ts";
import { param, type Params } from "./params.ts";

const shapes = (c: ModelConfig): Map<string, number[]> => {
  const d = c.hiddenSize, hd = headDim(c), q = c.numHeads * hd, kv = c.numKvHeads * hd;
  const ff = c.intermediateSize;
  const out = new Map<string, number[]>([["model.embed_tokens.weight", [c.vocabSize, d]]]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    out.set(`${p}input_layernorm.weight`, [d]);
    out.set(`${p}self_attn.q_proj.weight`, [q, d]);
    out.set(`${p}self_attn.k_proj.weight`, [kv, d]);
    out.set(`${p}self_attn.v_proj.weight`, [kv, d]);
    if (c.architecture === "qwen2") {
      out.set(`${p}self_attn.q_proj.bias`, [q]);
      out.set(`${p}self_attn.k_proj.bias`, [kv]);
      out.set(`${p}self_attn.v_proj.bias`, [kv]);
    }
    if (c.architecture === "qwen3") {
      out.set(`${p}self_attn.q_norm.weight`, [hd]);
      out.set(`${p}self_attn.k_norm.weight`, [hd]);
    }
    out.set(`${p}self_attn.o_proj.weight`, [d, q]);
    out.set(`${p}post_attention_layernorm.weight`, [d]);
    out.set(`${p}mlp.gate_proj.weight`, [ff, d]);
    out.set(`${p}mlp.up_proj.weight`, [ff, d]);
    out.set(`${p}mlp.down_proj.weight`, [d, ff]);
  }
  out.set("model.norm.weight", [d]);
  if (!c.tieEmbeddings) out.set("lm_head.weight", [c.vocabSize, d]);
  return out;
};

/** RMSNorm over each head's slice of x [rows, heads * hd] (Qwen3's q_norm / k_norm). */
const headNorm = (x: tf.Tensor2D, w: tf.Tensor1D, heads: number, eps: number): tf.Tensor2D => {
  const [rows, width] = x.shape;
  const perHead = rmsNorm(tf.reshape(x, [rows * heads, width / heads]), w, eps);
  return tf.reshape(perHead, [rows, width]);
};

/** q, k or v: the projection, Qwen2's bias, Qwen3's per-head norm. */
const project = (
  params: Params,
  c: ModelConfig,
  prefix: string,
  which: "q" | "k" | "v",
  a: tf.Tensor2D,
  heads: number,
): tf.Tensor2D => {
  const p = (name: string) => param(params, `${prefix}self_attn.${name}`);
  let y = linear(a, p(`${which}_proj.weight`) as tf.Tensor2D);
  if (c.architecture === "qwen2") y = addBias(y, p(`${which}_proj.bias`) as tf.Tensor1D);
  y = withLora(params, `${prefix}self_attn.${which}_proj`, a, y);
  if (c.architecture === "qwen3" && which !== "v") {
    y = headNorm(y, p(`${which}_norm.weight`) as tf.Tensor1D, heads, c.rmsNormEps);
  }
  return y;
};

/** A bias-free block projection `name` (e.g. "mlp.up_proj") of x, with its LoRA term if adapted. */
const dense = (params: Params, prefix: string, name: string, x: tf.Tensor2D): tf.Tensor2D =>
  withLora(params, prefix + name, x, linear(x, param(params, `${prefix}${name}.weight`) as tf.Tensor2D));

const block = (
  params: Params,
  c: ModelConfig,
  layer: number,
  x: tf.Tensor2D,
  tables: RopeTables,
  input: DecoderInput,
): tf.Tensor2D => {
  const prefix = `model.layers.${layer}.`;
  const p = (name: string) => param(params, prefix + name);
  const heads = { heads: c.numHeads, kvHeads: c.numKvHeads, headDim: headDim(c) };
  const a = rmsNorm(x, p("input_layernorm.weight") as tf.Tensor1D, c.rmsNormEps);
  const q = rope(project(params, c, prefix, "q", a, c.numHeads), tables, c.numHeads);
  const k = rope(project(params, c, prefix, "k", a, c.numKvHeads), tables, c.numKvHeads);
  const v = project(params, c, prefix, "v", a, c.numKvHeads);
  const { batch, tq, cache } = input;
  const att = cache
    ? cachedAttention(cache, layer, q, k, v, heads, tq)
    : causalAttention(q, k, v, { batch, tq, tk: tq, ...heads, qOffset: 0 });
  const h = tf.add(x, dense(params, prefix, "self_attn.o_proj", att)) as tf.Tensor2D;
  const m = rmsNorm(h, p("post_attention_layernorm.weight") as tf.Tensor1D, c.rmsNormEps);
  const gate = dense(params, prefix, "mlp.gate_proj", m);
  const up = dense(params, prefix, "mlp.up_proj", m);
  return tf.add(h, dense(params, prefix, "mlp.down_proj", swiglu(gate, up))) as tf.Tensor2D;
};

export const llamaDecoder: Decoder = {
  shapes,
  hidden: (params, c, input) => {
    const tables = ropeTables(input.positions, headDim(c), c.ropeTheta);
    let x = embedding(param(params, "model.embed_tokens.weight") as tf.Tensor2D, input.tokens);
    for (let layer = 0; layer < c.numLayers; layer++) x = block(params, c, layer, x, tables, input);
    return x;
  },
  finalNorm: (params, c, x) => rmsNorm(x, param(params, "model.norm.weight") as tf.Tensor1D, c.rmsNormEps),
  headWeight: (params, c) =>
    param(params, c.tieEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight") as tf.Tensor2D,
};
