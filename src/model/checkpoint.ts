/**
 * Model checkpoints in the Hugging Face layout: a directory with config.json (LlamaForCausalLM) and
 * model.safetensors (HF tensor names, float32), loadable with `transformers.AutoModelForCausalLM`.
 * Saving is deterministic: the same weights and config always produce the same bytes.
 */
import { Effect } from "effect";
import { CheckpointMalformed, type FileUnreadable, WriteFailed } from "../errors.ts";
import { readFile, writeFileAtomic } from "../io/fs.ts";
import { fromHfConfig, type ModelConfig, toHfConfig } from "./config.ts";
import { type Params, paramsFromArrays, paramShapes, paramsToArrays } from "./llama.ts";
import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";

export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "model.safetensors";

const message = (e: unknown): string => e instanceof Error ? e.message : String(e);
const join = (dir: string, name: string): string => `${dir.replace(/\/+$/, "")}/${name}`;

const exists = (path: string): Effect.Effect<boolean> =>
  Effect.promise(() => Deno.stat(path).then(() => true, () => false));

/**
 * Saves config.json and model.safetensors (plus `extraFiles`, e.g. tokenizer.json, by file name) into
 * `dir`, creating it. Weights are written first and config.json last.
 */
export const saveCheckpoint = (
  dir: string,
  config: ModelConfig,
  params: Params,
  extraFiles: Readonly<Record<string, Uint8Array | string>> = {},
): Effect.Effect<void, WriteFailed> =>
  Effect.gen(function* () {
    yield* Effect.tryPromise({
      try: () => Deno.mkdir(dir, { recursive: true }),
      catch: (e) => new WriteFailed({ path: dir, reason: message(e) }),
    });
    // "format": "pt" is what transformers checks before loading a safetensors file.
    const weights = serializeSafetensors(paramsToArrays(params), { format: "pt" });
    yield* writeFileAtomic(join(dir, WEIGHTS_FILE), weights);
    for (const name of Object.keys(extraFiles).sort()) {
      yield* writeFileAtomic(join(dir, name), extraFiles[name]);
    }
    yield* writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(toHfConfig(config), null, 2) + "\n");
  });

/** Tensors HF checkpoints may carry that this model recomputes and therefore ignores. */
const ignorable = (name: string, config: ModelConfig): boolean =>
  name.endsWith(".rotary_emb.inv_freq") || (config.tieEmbeddings && name === "lm_head.weight");

/**
 * Loads a checkpoint directory written by `saveCheckpoint` or by transformers (single-file safetensors,
 * any of F32/F16/BF16). Every expected tensor must be present with the shape config.json implies;
 * unknown tensors (biases, ...) are refused rather than silently dropped.
 */
export const loadCheckpoint = (
  dir: string,
): Effect.Effect<{ config: ModelConfig; params: Params }, CheckpointMalformed | FileUnreadable> =>
  Effect.gen(function* () {
    const configPath = join(dir, CONFIG_FILE), weightsPath = join(dir, WEIGHTS_FILE);
    const configText = new TextDecoder().decode(yield* readFile(configPath));
    let json: unknown;
    try {
      json = JSON.parse(configText);
    } catch (e) {
      return yield* Effect.fail(
        new CheckpointMalformed({ path: configPath, reason: `not JSON: ${message(e)}` }),
      );
    }
    const config = yield* fromHfConfig(json, configPath);

    if (!(yield* exists(weightsPath))) {
      const malformed = (reason: string) => Effect.fail(new CheckpointMalformed({ path: dir, reason }));
      if (yield* exists(join(dir, "model.safetensors.index.json"))) {
        return yield* malformed("sharded checkpoints (model.safetensors.index.json) are not supported");
      }
      if (yield* exists(join(dir, "pytorch_model.bin"))) {
        return yield* malformed("only model.safetensors weights are supported, found pytorch_model.bin");
      }
    }
    const file = yield* parseSafetensors(yield* readFile(weightsPath), weightsPath);
    const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path: weightsPath, reason }));
    const expected = paramShapes(config);
    for (const [name, shape] of expected) {
      const t = file.tensors.get(name);
      if (t === undefined) return yield* fail(`missing tensor ${name}`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        return yield* fail(
          `tensor ${name} has shape [${t.shape.join(", ")}], config.json implies [${shape.join(", ")}]`,
        );
      }
    }
    for (const name of file.tensors.keys()) {
      if (!expected.has(name) && !ignorable(name, config)) {
        return yield* fail(`unexpected tensor ${name} (not part of this Llama implementation)`);
      }
    }
    const arrays = new Map([...expected.keys()].map((name) => [name, file.tensors.get(name)!.data]));
    return { config, params: paramsFromArrays(config, arrays) };
  });
