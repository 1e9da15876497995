/**
 * The GPT-2 decoder (HF GPT2LMHeadModel): token plus learned position embeddings, then per layer
 *   x += c_proj(attention(split(c_attn(ln_1(x)))))
 *   x += mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
 * a final LayerNorm (ln_f) and the LM head (tied to wte unless tie_word_embeddings is false). The c_*
 * layers are HF's Conv1D: weights stored [in, out], y = x W + b.
 */
import * as tf from "@tensorflow/tfjs";
import { cachedAttention } from "./cache.ts";
import { headDim, type ModelConfig } from "./config.ts";
import type { Decoder } from "./decoder.ts";
import { causalAttention, columns, conv1d, embedding, gelu, layerNorm } from "./ops.ts";
import { withLora } from "./lora.ts";
import { param, type Params } from "./params.ts";

const shapes = (c: ModelConfig): Map<string, number[]> => {
  const d = c.hiddenSize, ff = c.intermediateSize;
  const out = new Map<string, number[]>([
    ["transformer.wte.weight", [c.vocabSize, d]],
    ["transformer.wpe.weight", [c.maxPositions, d]],
  ]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer.h.${i}.`;
    out.set(`${p}ln_1.weight`, [d]);
    out.set(`${p}ln_1.bias`, [d]);
    out.set(`${p}attn.c_attn.weight`, [d, 3 * d]);
    out.set(`${p}attn.c_attn.bias`, [3 * d]);
    out.set(`${p}attn.c_proj.weight`, [d, d]);
    out.set(`${p}attn.c_proj.bias`, [d]);
    out.set(`${p}ln_2.weight`, [d]);
    out.set(`${p}ln_2.bias`, [d]);
    out.set(`${p}mlp.c_fc.weight`, [d, ff]);
    out.set(`${p}mlp.c_fc.bias`, [ff]);
    out.set(`${p}mlp.c_proj.weight`, [ff, d]);
    out.set(`${p}mlp.c_proj.bias`, [d]);
  }
  out.set("transformer.ln_f.weight", [d]);
  out.set("transformer.ln_f.bias", [d]);
  if (!c.tieEmbeddings) out.set("lm_head.weight", [c.vocabSize, d]);
  return out;
};

const norm = (params: Params, c: ModelConfig, name: string, x: tf.Tensor2D): tf.Tensor2D =>
  layerNorm(
    x,
    param(params, `${name}.weight`) as tf.Tensor1D,
    param(params, `${name}.bias`) as tf.Tensor1D,
    c.rmsNormEps,
  );

/** The Conv1D `name` applied to x, plus its LoRA term when adapted (./lora.ts). */
const dense = (params: Params, name: string, x: tf.Tensor2D): tf.Tensor2D =>
  withLora(
    params,
    name,
    x,
    conv1d(x, param(params, `${name}.weight`) as tf.Tensor2D, param(params, `${name}.bias`) as tf.Tensor1D),
  );

export const gpt2Decoder: Decoder = {
  shapes,
  hidden: (params, c, { tokens, batch, tq, positions, cache }) => {
    const d = c.hiddenSize;
    const heads = { heads: c.numHeads, kvHeads: c.numHeads, headDim: headDim(c) };
    // Left-padding positions are negative; they are never attended to, any table row will do.
    const clamped = positions.map((p) => Math.max(0, p));
    let x = tf.add(
      embedding(param(params, "transformer.wte.weight") as tf.Tensor2D, tokens),
      embedding(param(params, "transformer.wpe.weight") as tf.Tensor2D, clamped),
    ) as tf.Tensor2D;
    for (let layer = 0; layer < c.numLayers; layer++) {
      const p = `transformer.h.${layer}.`;
      const qkv = dense(params, `${p}attn.c_attn`, norm(params, c, `${p}ln_1`, x));
      const q = columns(qkv, 0, d), k = columns(qkv, d, d), v = columns(qkv, 2 * d, d);
      const att = cache
        ? cachedAttention(cache, layer, q, k, v, heads, tq)
        : causalAttention(q, k, v, { batch, tq, tk: tq, ...heads, qOffset: 0 });
      const h = tf.add(x, dense(params, `${p}attn.c_proj`, att)) as tf.Tensor2D;
      const ff = dense(
        params,
        `${p}mlp.c_proj`,
        gelu(dense(params, `${p}mlp.c_fc`, norm(params, c, `${p}ln_2`, h))),
      );
      x = tf.add(h, ff) as tf.Tensor2D;
    }
    return x;
  },
  finalNorm: (params, c, x) => norm(params, c, "transformer.ln_f", x),
  headWeight: (params, c) =>
    param(params, c.tieEmbeddings ? "transformer.wte.weight" : "lm_head.weight") as tf.Tensor2D,
};
