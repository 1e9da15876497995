/**
 * LoRA (src/model/lora.ts) and its PEFT layout (src/model/peft.ts) on every architecture: a fresh adapter
 * leaves the logits bit for bit, merging agrees with the unmerged forward, gradients of A and B match
 * finite differences while the base weights stay frozen, adapters round-trip through disk, a PEFT-style
 * adapter made by hand computes W + scaling B A (transposed for GPT-2's Conv1D), and adapters that do not
 * fit are refused with AdapterInvalid.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { decodeModelConfig, type ModelConfig } from "../src/model/config.ts";
import {
  attachFreshAdapter,
  defaultTargets,
  loraAName,
  loraBName,
  loraOf,
  mergeAdapter,
  trainableParams,
} from "../src/model/lora.ts";
import { disposeParams, forward, initParams, type Params, paramShapes } from "../src/model/model.ts";
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  loadAdapter,
  readAdapter,
  saveAdapter,
} from "../src/model/peft.ts";
import { serializeSafetensors } from "../src/model/safetensors.ts";
import { AdamW } from "../src/train/adamw.ts";
import { optimizerStep } from "../src/train/step.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "./assert.ts";

await tf.setBackend("cpu");

const configOf = (fields: Record<string, unknown>): ModelConfig =>
  Effect.runSync(decodeModelConfig({
    vocabSize: 40,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 24,
    maxPositions: 32,
    tieEmbeddings: false,
    ...fields,
  }, "test"));

const CONFIGS: Record<string, ModelConfig> = {
  llama: configOf({ architecture: "llama" }),
  mistral: configOf({ architecture: "mistral", headDim: 8, slidingWindow: 16 }),
  qwen2: configOf({ architecture: "qwen2", tieEmbeddings: true }),
  qwen3: configOf({ architecture: "qwen3", headDim: 6, tieEmbeddings: true }),
  gpt2: configOf({ architecture: "gpt2", numKvHeads: 4, intermediateSize: 64, tieEmbeddings: true }),
};

const IDS = [[3, 7, 1, 30, 12, 5, 9, 22], [11, 0, 39, 4, 4, 18, 2, 6]];
const SETTINGS = { r: 4, alpha: 8, dropout: 0 };

const logits = (params: Params, c: ModelConfig): Float32Array => {
  const ids = tf.tensor2d(IDS, undefined, "int32");
  const out = forward(params, c, ids);
  const values = out.dataSync() as Float32Array;
  out.dispose();
  ids.dispose();
  return Float32Array.from(values);
};

/** Gives every lora_B (and A) random values, so the adapter changes the function. */
const randomiseAdapter = (params: Params, seed: number, scale = 0.3) => {
  const rng = Rng.seeded(seed);
  for (const [name, v] of params) {
    if (!name.includes(".lora_")) continue;
    tf.tidy(() =>
      v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal() * scale), v.shape))
    );
  }
};

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

for (const [arch, c] of Object.entries(CONFIGS)) {
  Deno.test(`lora ${arch}: a fresh adapter (B = 0) leaves the logits bit for bit; it adapts every default target`, () => {
    const params = initParams(c, Rng.seeded(1));
    const before = logits(params, c);
    attachFreshAdapter(params, c, paramShapes(c), SETTINGS, Rng.seeded(2));
    const modules = loraOf(params)!.modules.map((m) => m.module);
    const perLayer = arch === "gpt2" ? 4 : 7; // GPT-2: c_attn, attn.c_proj, c_fc, mlp.c_proj
    assertEquals(modules.length, c.numLayers * perLayer);
    for (const t of defaultTargets(c)) assert(modules.some((m) => m.endsWith(`.${t}`)), `${t} adapted`);
    // A is not zero (kaiming-uniform, |a| <= 1/sqrt(in)); B is.
    const a = params.get(loraAName(modules[0]))!.dataSync();
    assert(a.some((x) => x !== 0) && a.every((x) => Math.abs(x) <= 1 / Math.sqrt(16) + 1e-7));
    assert(params.get(loraBName(modules[0]))!.dataSync().every((x) => x === 0));
    assertEquals(logits(params, c), before);
    disposeParams(params);
  });

  Deno.test(`lora ${arch}: merged and unmerged logits agree within 1e-5, and differ from the base`, () => {
    const params = initParams(c, Rng.seeded(3));
    const base = logits(params, c);
    attachFreshAdapter(
      params,
      c,
      paramShapes(c),
      { ...SETTINGS, useRslora: arch === "qwen2" },
      Rng.seeded(4),
    );
    randomiseAdapter(params, 5);
    const adapted = logits(params, c);
    assert(maxDiff(adapted, base) > 1e-3, "the adapter changes the logits");
    mergeAdapter(params, c);
    assert(![...params.keys()].some((n) => n.includes("lora_")), "merging removes A and B");
    assertEquals([...params.keys()], [...paramShapes(c).keys()]);
    const merged = logits(params, c);
    assert(maxDiff(merged, adapted) <= 1e-5, `max diff ${maxDiff(merged, adapted)}`);
    disposeParams(params);
  });
}

/** sum(logits * R) for a fixed R: a scalar whose gradient reaches every adapter tensor. */
const probeLoss = (params: Params, c: ModelConfig, r: tf.Tensor) =>
  tf.tidy(() => tf.sum(tf.mul(forward(params, c, tf.tensor2d(IDS, undefined, "int32")), r)) as tf.Scalar);

for (const arch of ["llama", "qwen2", "gpt2"]) {
  Deno.test(`lora ${arch}: gradients of A and B match central finite differences`, () => {
    const c = CONFIGS[arch];
    const params = initParams(c, Rng.seeded(6));
    attachFreshAdapter(params, c, paramShapes(c), SETTINGS, Rng.seeded(7));
    randomiseAdapter(params, 8, 0.1);
    const rng = Rng.seeded(9);
    const r = tf.tensor(Float32Array.from({ length: 2 * 8 * c.vocabSize }, () => rng.normal()), [
      2,
      8,
      c.vocabSize,
    ]);
    const trainable = trainableParams(params);
    const names = [...trainable.keys()];
    assertEquals(names.length, loraOf(params)!.modules.length * 2);
    const { grads } = tf.variableGrads(() => probeLoss(params, c, r), [...trainable.values()]);
    const byName = new Map(names.map((n) => [n, grads[trainable.get(n)!.name].dataSync()]));
    let checked = 0;
    for (const name of [names[0], names[1], names.at(-2)!, names.at(-1)!]) {
      const v = params.get(name)!;
      const values = Float32Array.from(v.dataSync());
      for (const i of [0, Math.floor(v.size / 2), v.size - 1]) {
        const h = 3e-3;
        const at = (x: number) => {
          const copy = Float32Array.from(values);
          copy[i] = x;
          v.assign(tf.tensor(copy, v.shape));
          const l = probeLoss(params, c, r);
          const out = l.dataSync()[0];
          l.dispose();
          return out;
        };
        const fd = (at(values[i] + h) - at(values[i] - h)) / (2 * h);
        v.assign(tf.tensor(values, v.shape));
        const g = byName.get(name)![i];
        assert(Math.abs(fd - g) <= 2e-2 * Math.max(1, Math.abs(g)), `${name}[${i}]: analytic ${g}, fd ${fd}`);
        checked++;
      }
    }
    assertEquals(checked, 12);
    Object.values(grads).forEach((g) => g.dispose());
    r.dispose();
    disposeParams(params);
  });
}

Deno.test("lora: an optimizer step moves A and B only; AdamW holds moments for the adapter alone", () => {
  const c = CONFIGS.llama;
  const params = initParams(c, Rng.seeded(10));
  attachFreshAdapter(params, c, paramShapes(c), SETTINGS, Rng.seeded(11));
  const before = new Map([...params].map(([n, v]) => [n, Float32Array.from(v.dataSync())]));
  const optimizer = new AdamW(trainableParams(params), { weightDecay: 0.01 });
  const state = optimizer.exportState();
  assertEquals(state.m.size, loraOf(params)!.modules.length * 2);
  const mb = { ids: IDS, weights: IDS.map((row) => row.map((_, t) => (t === 0 ? 0 : 1))) };
  const result = optimizerStep(params, c, optimizer, [mb], { lr: 1e-2, clipNorm: 1 });
  assert(result.applied);
  for (const [name, v] of params) {
    const same = v.dataSync().every((x, i) => x === before.get(name)![i]);
    if (name.includes("lora_B")) assert(!same, `${name} is trained`);
    if (!name.includes("lora_")) assert(same, `${name} is frozen`);
  }
  disposeParams(params);
});

const tmp = () => Deno.makeTempDirSync({ prefix: "lora-test-" });

for (const arch of ["qwen3", "gpt2"]) {
  Deno.test(`peft ${arch}: an adapter written by the project reads back with PEFT's names and shapes and computes the same`, async () => {
    const c = CONFIGS[arch];
    const params = initParams(c, Rng.seeded(12));
    const targets = defaultTargets(c);
    attachFreshAdapter(params, c, paramShapes(c), { ...SETTINGS, targets }, Rng.seeded(13));
    randomiseAdapter(params, 14);
    const adapted = logits(params, c);
    const dir = tmp();
    await Effect.runPromise(saveAdapter(dir, c, params, { ...SETTINGS, targets }, targets, "some/base"));
    const config = JSON.parse(Deno.readTextFileSync(`${dir}/${ADAPTER_CONFIG_FILE}`));
    assertEquals(
      [config.peft_type, config.r, config.lora_alpha, config.fan_in_fan_out, config.task_type, config.bias],
      ["LORA", 4, 8, arch === "gpt2", "CAUSAL_LM", "none"],
    );
    const file = await Effect.runPromise(readAdapter(dir));
    const layer0 = arch === "gpt2"
      ? "base_model.model.transformer.h.0.attn.c_attn"
      : "base_model.model.model.layers.0.self_attn.q_proj";
    const qOut = arch === "gpt2" ? 48 : 4 * 6;
    assertEquals(file.tensors.get(`${layer0}.lora_A.weight`)?.shape, [4, 16]);
    assertEquals(file.tensors.get(`${layer0}.lora_B.weight`)?.shape, [qOut, 4]);
    assertEquals(file.tensors.size, loraOf(params)!.modules.length * 2);
    const fresh = initParams(c, Rng.seeded(12));
    await Effect.runPromise(loadAdapter(dir, c, fresh));
    assertEquals(logits(fresh, c), adapted);
    disposeParams(params);
    disposeParams(fresh);
  });
}

/** Writes an adapter as PEFT does: its config fields and `base_model.model.` names, given tensors. */
const writePeftStyle = (
  dir: string,
  config: Record<string, unknown>,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
) => {
  Deno.writeTextFileSync(
    `${dir}/${ADAPTER_CONFIG_FILE}`,
    JSON.stringify({
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: "HuggingFaceTB/SmolLM2-135M",
      bias: "none",
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layers_pattern: null,
      layers_to_transform: null,
      lora_alpha: 16,
      lora_dropout: 0.05,
      modules_to_save: null,
      peft_type: "LORA",
      r: 2,
      rank_pattern: {},
      revision: null,
      target_modules: ["v_proj", "q_proj"],
      task_type: "CAUSAL_LM",
      use_dora: false,
      use_rslora: false,
      ...config,
    }),
  );
  Deno.writeFileSync(`${dir}/${ADAPTER_WEIGHTS_FILE}`, serializeSafetensors(tensors, { format: "pt" }));
};

const randomTensor = (rng: Rng, shape: number[]) => ({
  shape,
  data: Float32Array.from({ length: shape[0] * shape[1] }, () => rng.normal() * 0.2),
});

/** PEFT-style tensors for `modules` ([in, out] per module) of rank r. */
const peftTensors = (modules: Array<[string, number, number]>, r: number, seed: number) => {
  const rng = Rng.seeded(seed);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [m, inF, outF] of modules) {
    out.set(`base_model.model.${m}.lora_A.weight`, randomTensor(rng, [r, inF]));
    out.set(`base_model.model.${m}.lora_B.weight`, randomTensor(rng, [outF, r]));
  }
  return out;
};

/** W += s * B A by hand (W [out, in]), or W += s * (B A)^T for a Conv1D weight [in, out]. */
const mergeByHand = (
  params: Params,
  module: string,
  a: { data: Float32Array },
  b: { data: Float32Array },
  r: number,
  s: number,
  conv: boolean,
) => {
  const w = params.get(`${module}.weight`)!;
  const data = Float32Array.from(w.dataSync());
  const [rows, cols] = w.shape;
  const [inF, outF] = conv ? [rows, cols] : [cols, rows];
  for (let o = 0; o < outF; o++) {
    for (let i = 0; i < inF; i++) {
      let sum = 0;
      for (let k = 0; k < r; k++) sum += b.data[o * r + k] * a.data[k * inF + i];
      data[conv ? i * outF + o : o * inF + i] += s * sum;
    }
  }
  w.assign(tf.tensor(data, w.shape));
};

Deno.test("peft llama: a hand-made PEFT adapter (q_proj, v_proj, r = 2, alpha = 16) computes W + alpha/r B A", async () => {
  const c = CONFIGS.llama;
  const modules: Array<[string, number, number]> = [];
  for (let l = 0; l < c.numLayers; l++) {
    modules.push([`model.layers.${l}.self_attn.q_proj`, 16, 16], [
      `model.layers.${l}.self_attn.v_proj`,
      16,
      8,
    ]);
  }
  const tensors = peftTensors(modules, 2, 15);
  const dir = tmp();
  writePeftStyle(dir, {}, tensors);
  const adapted = initParams(c, Rng.seeded(16));
  await Effect.runPromise(loadAdapter(dir, c, adapted));
  const byHand = initParams(c, Rng.seeded(16));
  for (const [m] of modules) {
    const a = tensors.get(`base_model.model.${m}.lora_A.weight`)!,
      b = tensors.get(`base_model.model.${m}.lora_B.weight`)!;
    mergeByHand(byHand, m, a, b, 2, 16 / 2, false);
  }
  const d = maxDiff(logits(adapted, c), logits(byHand, c));
  assert(d <= 1e-5, `max diff ${d}`);
  disposeParams(adapted);
  disposeParams(byHand);
});

Deno.test("peft gpt2: a hand-made fan_in_fan_out adapter on c_attn (rsLoRA) computes W + alpha/sqrt(r) (B A)^T", async () => {
  const c = CONFIGS.gpt2;
  const modules: Array<[string, number, number]> = [];
  for (let l = 0; l < c.numLayers; l++) modules.push([`transformer.h.${l}.attn.c_attn`, 16, 48]);
  const tensors = peftTensors(modules, 4, 17);
  const dir = tmp();
  writePeftStyle(dir, { target_modules: ["c_attn"], fan_in_fan_out: true, r: 4, use_rslora: true }, tensors);
  const adapted = initParams(c, Rng.seeded(18));
  await Effect.runPromise(loadAdapter(dir, c, adapted));
  const byHand = initParams(c, Rng.seeded(18));
  for (const [m] of modules) {
    const a = tensors.get(`base_model.model.${m}.lora_A.weight`)!,
      b = tensors.get(`base_model.model.${m}.lora_B.weight`)!;
    mergeByHand(byHand, m, a, b, 4, 16 / Math.sqrt(4), true);
  }
  const d = maxDiff(logits(adapted, c), logits(byHand, c));
  assert(d <= 1e-5, `max diff ${d}`);
  disposeParams(adapted);
  disposeParams(byHand);
});

const rejected = async (
  config: Record<string, unknown>,
  edit: (t: Map<string, { shape: number[]; data: Float32Array }>) => void,
) => {
  const c = CONFIGS.llama;
  const modules: Array<[string, number, number]> = [];
  for (let l = 0; l < c.numLayers; l++) {
    modules.push([`model.layers.${l}.self_attn.q_proj`, 16, 16], [
      `model.layers.${l}.self_attn.v_proj`,
      16,
      8,
    ]);
  }
  const tensors = peftTensors(modules, 2, 19);
  edit(tensors);
  const dir = tmp();
  writePeftStyle(dir, config, tensors);
  const params = initParams(c, Rng.seeded(20));
  const result = await Effect.runPromise(Effect.either(loadAdapter(dir, c, params)));
  disposeParams(params);
  assert(result._tag === "Left", "the adapter is refused");
  return result.left;
};

Deno.test("peft: a missing module is refused with AdapterInvalid naming it", async () => {
  const e = await rejected(
    {},
    (t) => t.delete("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"),
  );
  assertEquals(e._tag, "AdapterInvalid");
  assert(
    e._tag === "AdapterInvalid" &&
      e.reason.includes("missing base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"),
  );
});

Deno.test("peft: an extra module (o_proj, not in target_modules) is refused", async () => {
  const e = await rejected({}, (t) => {
    const rng = Rng.seeded(21);
    t.set("base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight", randomTensor(rng, [2, 16]));
  });
  assert(e._tag === "AdapterInvalid" && e.reason.includes("o_proj.lora_A.weight"), JSON.stringify(e));
});

Deno.test("peft: a shape that does not match the base is refused", async () => {
  const e = await rejected({}, (t) => {
    t.set(
      "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
      randomTensor(Rng.seeded(22), [17, 2]),
    );
  });
  assert(
    e._tag === "AdapterInvalid" && e.reason.includes("[17, 2]") && e.reason.includes("[16, 2]"),
    JSON.stringify(e),
  );
});

Deno.test("peft: an unknown peft_type is refused", async () => {
  const e = await rejected({ peft_type: "PREFIX_TUNING" }, () => {});
  assert(e._tag === "AdapterInvalid" && e.reason.includes("PREFIX_TUNING"), JSON.stringify(e));
  assert(e.path.endsWith(ADAPTER_CONFIG_FILE));
});
