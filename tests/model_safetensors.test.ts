import * as tf from "@tensorflow/tfjs";
import { Effect, Exit } from "effect";
import { CheckpointMalformed, FileUnreadable } from "../src/errors.ts";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.ts";
import { initParams } from "../src/model/model.ts";
import { parseSafetensors, serializeSafetensors } from "../src/model/safetensors.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";

await tf.setBackend("cpu");

/** A safetensors file from a header object and raw data bytes (no validation: for malformed cases). */
const build = (
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  lengthOverride?: number,
): Uint8Array => {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, lengthOverride ?? json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
};

const failureOf = <E>(effect: Effect.Effect<unknown, E>): E => {
  const exit = Effect.runSyncExit(effect);
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error("expected a typed failure");
  return exit.cause.error;
};

const failurePromise = async <E>(effect: Effect.Effect<unknown, E>): Promise<E> => {
  const exit = await Effect.runPromiseExit(effect);
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error("expected a typed failure");
  return exit.cause.error;
};

Deno.test("serialize -> parse -> serialize is byte-identical, values bit-exact (NaN payload, -0)", () => {
  const odd = new Float32Array(new Uint32Array([0x7fc00123, 0x80000000, 0x00000001, 0x3f800000]).buffer);
  const tensors = new Map([
    ["b", { shape: [2, 2], data: odd }],
    ["a", { shape: [3], data: Float32Array.from([1.5, -2, 1e-30]) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
  ]);
  const bytes = serializeSafetensors(tensors, { format: "pt" });
  const headerLength = new DataView(bytes.buffer).getUint32(0, true);
  assertEquals(headerLength % 8, 0);
  const parsed = Effect.runSync(parseSafetensors(bytes, "x.safetensors"));
  assertEquals(parsed.metadata, { format: "pt" });
  assertEquals([...parsed.tensors.keys()].sort(), ["a", "b", "empty"]);
  assertEquals(new Uint32Array(parsed.tensors.get("b")!.data.buffer), new Uint32Array(odd.buffer));
  assertEquals(serializeSafetensors(parsed.tensors, parsed.metadata), bytes);
});

Deno.test("F16 and BF16 are widened to float32", () => {
  const f16 = Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x0001, 0x7c00, 0x7bff]);
  const bf16 = Uint16Array.from([0x3f80, 0xc000, 0x4049]);
  const data = new Uint8Array(18);
  data.set(new Uint8Array(f16.buffer), 0);
  data.set(new Uint8Array(bf16.buffer), 12);
  const file = build({
    h: { dtype: "F16", shape: [6], data_offsets: [0, 12] },
    b: { dtype: "BF16", shape: [3], data_offsets: [12, 18] },
  }, data);
  const parsed = Effect.runSync(parseSafetensors(file, "x"));
  assertEquals([...parsed.tensors.get("h")!.data], [1, -2, 0.5, 2 ** -24, Infinity, 65504]);
  assertEquals([...parsed.tensors.get("b")!.data], [1, -2, 3.140625]);
  assertEquals(parsed.dtypes.get("b"), "BF16");
});

Deno.test("malformed files are CheckpointMalformed with a reason", () => {
  const t = (extra: Record<string, unknown> = {}) => ({
    dtype: "F32",
    shape: [2],
    data_offsets: [0, 8],
    ...extra,
  });
  const cases: Array<[Uint8Array, string]> = [
    [new Uint8Array(5), "too short"],
    [build({ x: t() }, new Uint8Array(8), 1e6), "past the end"],
    [
      (() => { // a 2^40-byte header claim must not allocate anything
        const f = build({}, new Uint8Array(0));
        new DataView(f.buffer).setUint32(4, 256, true);
        return f;
      })(),
      "past the end",
    ],
    [build("{not json", new Uint8Array(0)), "not valid UTF-8 JSON"],
    [build([1, 2], new Uint8Array(0)), "not a JSON object"],
    [build({ x: t({ dtype: "F99" }) }, new Uint8Array(8)), "unknown dtype F99"],
    [build({ x: t({ dtype: "I64", shape: [1] }) }, new Uint8Array(8)), "unsupported dtype I64"],
    [build({ x: t({ data_offsets: [0, 16], shape: [4] }) }, new Uint8Array(8)), "run past"],
    [build({ x: t({ shape: [3] }) }, new Uint8Array(8)), "expected 12"],
    [build({ x: t(), y: t({ data_offsets: [4, 12] }) }, new Uint8Array(12)), "overlaps"],
    [build({ x: t({ data_offsets: [4, 12] }) }, new Uint8Array(12)), "belong to no tensor"],
    [build({ x: t() }, new Uint8Array(12)), "belong to no tensor"],
    [build({ x: t({ shape: [-2] }) }, new Uint8Array(8)), "shape"],
    [build({ x: t({ data_offsets: [8, 0] }) }, new Uint8Array(8)), "data_offsets"],
    [build({ __metadata__: { step: 3 }, x: t() }, new Uint8Array(8)), "__metadata__"],
  ];
  for (const [bytes, mention] of cases) {
    const e = failureOf(parseSafetensors(bytes, "m.safetensors"));
    assert(e instanceof CheckpointMalformed);
    assertEquals(e.path, "m.safetensors");
    assert(e.reason.includes(mention), `"${e.reason}" should mention "${mention}"`);
  }
});

Deno.test("checkpoint save -> load -> save gives identical bytes and identical weights", async () => {
  const config = tinyConfig({ tieEmbeddings: true });
  const params = initParams(config, Rng.seeded(11));
  const dir = await Deno.makeTempDir();
  await Effect.runPromise(saveCheckpoint(`${dir}/a`, config, params, { "tokenizer.json": "{}" }));
  const loaded = await Effect.runPromise(loadCheckpoint(`${dir}/a`));
  assertEquals(loaded.config, config);
  for (const [name, v] of params) assertEquals([...loaded.params.get(name)!.dataSync()], [...v.dataSync()]);
  await Effect.runPromise(saveCheckpoint(`${dir}/b`, loaded.config, loaded.params));
  for (const f of ["model.safetensors", "config.json"]) {
    assertEquals(await Deno.readFile(`${dir}/b/${f}`), await Deno.readFile(`${dir}/a/${f}`));
  }
  assertEquals(await Deno.readTextFile(`${dir}/a/tokenizer.json`), "{}");
  const hf = JSON.parse(await Deno.readTextFile(`${dir}/a/config.json`));
  assertEquals(hf.architectures, ["LlamaForCausalLM"]);
  [params, loaded.params].forEach((p) => p.forEach((v) => v.dispose()));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadCheckpoint refuses missing, misshapen and unknown tensors", async () => {
  const config = tinyConfig();
  const params = initParams(config, Rng.seeded(12));
  const dir = await Deno.makeTempDir();
  await Effect.runPromise(saveCheckpoint(dir, config, params));
  const good = Effect.runSync(parseSafetensors(await Deno.readFile(`${dir}/model.safetensors`), "x")).tensors;
  const rewrite = async (edit: (m: typeof good) => void) => {
    const copy = new Map(good);
    edit(copy);
    await Deno.writeFile(`${dir}/model.safetensors`, serializeSafetensors(copy));
  };
  const cases: Array<[(m: typeof good) => void, string]> = [
    [
      (m) => m.delete("model.layers.1.mlp.up_proj.weight"),
      "missing tensor model.layers.1.mlp.up_proj.weight",
    ],
    [
      (m) => m.set("model.norm.weight", { shape: [8], data: new Float32Array(8) }),
      "model.norm.weight has shape [8]",
    ],
    [
      (m) => m.set("model.layers.0.self_attn.q_proj.bias", { shape: [16], data: new Float32Array(16) }),
      "unexpected",
    ],
  ];
  for (const [edit, mention] of cases) {
    await rewrite(edit);
    const e = await failurePromise(loadCheckpoint(dir));
    assert(
      e instanceof CheckpointMalformed && e.reason.includes(mention),
      `${JSON.stringify(e)} / ${mention}`,
    );
  }
  // HF's old rotary buffers are ignored
  await rewrite((m) =>
    m.set("model.layers.0.self_attn.rotary_emb.inv_freq", { shape: [2], data: new Float32Array(2) })
  );
  (await Effect.runPromise(loadCheckpoint(dir))).params.forEach((v) => v.dispose());

  await Deno.remove(`${dir}/model.safetensors`);
  const none = await failurePromise(loadCheckpoint(dir));
  assert(none instanceof CheckpointMalformed && none.reason.includes("model.safetensors.index.json"));
  await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, "{}");
  const sharded = await failurePromise(loadCheckpoint(dir));
  assert(sharded instanceof CheckpointMalformed && sharded.reason.includes("weight_map"));
  await Deno.writeTextFile(`${dir}/config.json`, "{oops");
  assert(await failurePromise(loadCheckpoint(dir)) instanceof CheckpointMalformed);
  assert(await failurePromise(loadCheckpoint(`${dir}/nowhere`)) instanceof FileUnreadable);
  params.forEach((v) => v.dispose());
  await Deno.remove(dir, { recursive: true });
});
