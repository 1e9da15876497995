/**
 * Hugging Face checkpoint directories: load -> save -> load is bit-identical for every stored layout
 * (F32/F16/BF16, sharded, GPT-2's original names), saving keeps config.json's other fields and copies
 * tokenizer files, and malformed shards, indexes and safetensors files are refused with
 * CheckpointMalformed before anything large is read or allocated.
 */
import { Effect, Exit } from "effect";
import { CheckpointMalformed } from "../src/errors.ts";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams } from "../src/model/model.ts";
import { readSafetensorsFile, serializeSafetensors } from "../src/model/safetensors.ts";
import { assert, assertEquals } from "./assert.ts";

const root = new URL("../fixtures/goldens/", import.meta.url).pathname;

const failure = async <E>(effect: Effect.Effect<unknown, E>): Promise<E> => {
  const exit = await Effect.runPromiseExit(effect);
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a failure, got ${exit}`);
  return exit.cause.error;
};

const snapshot = (params: Map<string, { dataSync(): ArrayLike<number> }>) =>
  new Map([...params].map(([k, v]) => [k, new Uint8Array(Float32Array.from(v.dataSync()).buffer)]));

const copyDir = async (from: string, to: string) => {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
};

Deno.test("load -> save -> load is bit-identical for every golden layout; saving is deterministic", async () => {
  const tmp = await Deno.makeTempDir();
  for (const name of ["gpt2", "llama", "llama_gqa", "mistral", "qwen2", "qwen3"]) {
    const first = await Effect.runPromise(loadCheckpoint(`${root}${name}`));
    await Effect.runPromise(
      saveCheckpoint(`${tmp}/${name}`, first.config, first.params, {}, { baseConfig: first.hfConfig }),
    );
    const second = await Effect.runPromise(loadCheckpoint(`${tmp}/${name}`));
    assertEquals(second.config, first.config);
    assertEquals(snapshot(second.params), snapshot(first.params), name);
    await Effect.runPromise(
      saveCheckpoint(`${tmp}/${name}-again`, second.config, second.params, {}, {
        baseConfig: second.hfConfig,
      }),
    );
    for (const f of ["model.safetensors", "config.json"]) {
      assertEquals(
        await Deno.readFile(`${tmp}/${name}-again/${f}`),
        await Deno.readFile(`${tmp}/${name}/${f}`),
      );
    }
    const hf = JSON.parse(await Deno.readTextFile(`${tmp}/${name}/config.json`));
    assertEquals(hf.architectures, first.hfConfig.architectures);
    disposeParams(first.params);
    disposeParams(second.params);
  }
  // GPT-2: the original names (no "transformer." prefix) and mask buffers become HF's current layout.
  const names = [
    ...(await Effect.runPromise(readSafetensorsFile(`${tmp}/gpt2/model.safetensors`))).tensors.keys(),
  ];
  assert(names.every((n) => n.startsWith("transformer.")) && !names.some((n) => n.endsWith(".attn.bias")));
  assert(!names.includes("lm_head.weight"), "a tied head is not stored");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("saving keeps the source config's other fields and copies tokenizer files", async () => {
  const tmp = await Deno.makeTempDir();
  await copyDir(`${root}qwen2`, `${tmp}/src`);
  const config = JSON.parse(await Deno.readTextFile(`${tmp}/src/config.json`));
  await Deno.writeTextFile(`${tmp}/src/config.json`, JSON.stringify({ ...config, eos_token_id: 5 }));
  await Deno.writeTextFile(`${tmp}/src/tokenizer.json`, '{"model": {}}');
  await Deno.writeTextFile(`${tmp}/src/generation_config.json`, '{"eos_token_id": 5}');
  const loaded = await Effect.runPromise(loadCheckpoint(`${tmp}/src`));
  await Effect.runPromise(
    saveCheckpoint(`${tmp}/out`, loaded.config, loaded.params, {}, {
      baseConfig: loaded.hfConfig,
      copySideFilesFrom: `${tmp}/src`,
    }),
  );
  const saved = JSON.parse(await Deno.readTextFile(`${tmp}/out/config.json`));
  assertEquals([saved.eos_token_id, saved.model_type, saved.use_sliding_window], [5, "qwen2", false]);
  assertEquals(await Deno.readTextFile(`${tmp}/out/tokenizer.json`), '{"model": {}}');
  assertEquals(await Deno.readTextFile(`${tmp}/out/generation_config.json`), '{"eos_token_id": 5}');
  disposeParams(loaded.params);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("malformed sharded checkpoints are CheckpointMalformed with the reason", async () => {
  const tmp = await Deno.makeTempDir();
  const src = `${root}llama_gqa`;
  const index = JSON.parse(await Deno.readTextFile(`${src}/model.safetensors.index.json`));
  const [firstTensor, firstShard] = Object.entries(index.weight_map)[0] as [string, string];
  const cases: Array<[string, (dir: string) => Promise<void>, string]> = [
    ["path leaving the directory", async (dir) => {
      await writeIndex(dir, { ...index.weight_map, [firstTensor]: "../outside.safetensors" });
    }, "not a file name inside"],
    ["absolute path", async (dir) => {
      await writeIndex(dir, { ...index.weight_map, [firstTensor]: "/etc/passwd" });
    }, "not a file name inside"],
    ["symlink leaving the directory", async (dir) => {
      await Deno.remove(`${dir}/${firstShard}`);
      await Deno.symlink(`${src}/${firstShard}`, `${dir}/${firstShard}`);
    }, "resolves outside"],
    ["missing shard", async (dir) => {
      await Deno.remove(`${dir}/${firstShard}`);
    }, "missing"],
    ["tensor listed in the wrong shard", async (dir) => {
      const other = Object.values(index.weight_map).find((s) => s !== firstShard) as string;
      await writeIndex(dir, { ...index.weight_map, [firstTensor]: other });
    }, "listed"],
    ["tensor not listed", async (dir) => {
      const map = { ...index.weight_map };
      delete map[firstTensor];
      await writeIndex(dir, map);
    }, "not listed"],
    ["no weight_map", async (dir) => {
      await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, '{"metadata": {}}');
    }, "weight_map"],
  ];
  for (const [what, edit, mention] of cases) {
    const dir = `${tmp}/${what.replaceAll(" ", "_")}`;
    await copyDir(src, dir);
    await edit(dir);
    const e = await failure(loadCheckpoint(dir));
    assert(e instanceof CheckpointMalformed && e.reason.includes(mention), `${what}: ${JSON.stringify(e)}`);
  }
  await Deno.remove(tmp, { recursive: true });
});

const writeIndex = (dir: string, weightMap: Record<string, unknown>) =>
  Deno.writeTextFile(`${dir}/model.safetensors.index.json`, JSON.stringify({ weight_map: weightMap }));

Deno.test("malformed safetensors files are refused from their header alone", async () => {
  const tmp = await Deno.makeTempDir();
  const header = (h: Record<string, unknown>, dataBytes: number, declared?: number) => {
    const json = new TextEncoder().encode(JSON.stringify(h));
    const out = new Uint8Array(8 + json.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(declared ?? json.length), true);
    out.set(json, 8);
    return out;
  };
  const cases: Array<[Uint8Array, string]> = [
    [header({}, 0, 2 ** 40), "past the end"],
    [
      header({ x: { dtype: "F32", shape: [2 ** 31, 2 ** 31, 2 ** 31], data_offsets: [0, 8] } }, 8),
      "too large",
    ],
    [header({ x: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, 8), "run past"],
    [header({ x: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8), "expected 12"],
    [header({ x: { dtype: "Q4", shape: [2], data_offsets: [0, 8] } }, 8), "unknown dtype"],
    [
      header({
        x: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        y: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }, 12),
      "overlaps",
    ],
    [new Uint8Array(5), "too short"],
  ];
  for (const [bytes, mention] of cases) {
    await Deno.writeFile(`${tmp}/bad.safetensors`, bytes);
    const e = await failure(readSafetensorsFile(`${tmp}/bad.safetensors`));
    assert(
      e instanceof CheckpointMalformed && e.reason.includes(mention),
      `${mention}: ${JSON.stringify(e)}`,
    );
  }
  // A well-formed file reads back exactly.
  const data = Float32Array.from([1.5, -0, 3.25e-20, NaN]);
  await Deno.writeFile(
    `${tmp}/ok.safetensors`,
    serializeSafetensors(new Map([["w", { shape: [2, 2], data }]])),
  );
  const read = await Effect.runPromise(readSafetensorsFile(`${tmp}/ok.safetensors`));
  assertEquals(new Uint8Array(read.tensors.get("w")!.data.buffer), new Uint8Array(data.buffer));
  await Deno.remove(tmp, { recursive: true });
});
