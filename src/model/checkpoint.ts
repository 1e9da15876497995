/**
 * Model checkpoints in the Hugging Face layout: a directory with config.json and the weights as
 * model.safetensors, or as shards listed in model.safetensors.index.json. Loading accepts every
 * architecture of ./config.ts and F32/F16/BF16 tensors; saving writes one float32 model.safetensors with
 * HF's tensor names, config.json (keeping the source's other fields) and the tokenizer files, so the
 * result loads with `transformers.AutoModelForCausalLM` and here. Saving is deterministic: the same
 * weights and config always produce the same bytes.
 */
import { onHost } from "../backend/webgpu.ts";
import { Effect } from "effect";
import { CheckpointMalformed, FileUnreadable, WriteFailed } from "../errors.ts";
import { readFile, writeFileAtomic } from "../io/fs.ts";
import { fromHfConfig, type ModelConfig, toHfConfig } from "./config.ts";
import { type Params, paramsFromArrays, paramShapes } from "./model.ts";
import {
  type NamedTensor,
  readSafetensorsFile,
  type WriteDtype,
  writeSafetensorsFile,
} from "./safetensors.ts";

export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

/** Files besides the weights that make a checkpoint directory usable by HF tools; copied on save. */
export const SIDE_FILES = [
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "chat_template.jinja",
];

/** An error's message on one line (JSON.parse quotes the offending text, newlines included). */
const message = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, " ");
const join = (dir: string, name: string): string => `${dir.replace(/\/+$/, "")}/${name}`;

const exists = (path: string): Effect.Effect<boolean> =>
  Effect.promise(() => Deno.stat(path).then(() => true, () => false));

export interface SaveOptions {
  /** The config.json the weights were loaded from; its fields this model does not set are kept. */
  readonly baseConfig?: Record<string, unknown>;
  /** A checkpoint directory whose SIDE_FILES (tokenizer, generation config) are copied when present. */
  readonly copySideFilesFrom?: string;
  /** The weights' dtype on disk: F32 (default) or BF16 (half the size; config.json's torch_dtype says so). */
  readonly dtype?: WriteDtype;
}

/**
 * Saves config.json and model.safetensors (plus `extraFiles`, e.g. tokenizer.json, by file name) into
 * `dir`, creating it. Weights are written first and config.json last. Tensors are written straight from
 * the parameters' buffers (no copy of the model is made).
 */
export const saveCheckpoint = (
  dir: string,
  config: ModelConfig,
  params: Params,
  extraFiles: Readonly<Record<string, Uint8Array | string>> = {},
  options: SaveOptions = {},
): Effect.Effect<void, WriteFailed> =>
  Effect.gen(function* () {
    yield* Effect.tryPromise({
      try: () => Deno.mkdir(dir, { recursive: true }),
      catch: (e) => new WriteFailed({ path: dir, reason: message(e) }),
    });
    // On webgpu the values are read back from the device first (src/backend/webgpu.ts).
    yield* Effect.promise(() => onHost(params.values()));
    const tensors = new Map<string, NamedTensor>(
      [...params].map(([name, v]) => [name, { shape: v.shape, data: v.dataSync() as Float32Array }]),
    );
    // "format": "pt" is what transformers checks before loading a safetensors file.
    yield* writeSafetensorsFile(join(dir, WEIGHTS_FILE), tensors, { format: "pt" }, options.dtype);
    const files: Record<string, Uint8Array | string> = {};
    if (options.copySideFilesFrom !== undefined) {
      for (const name of SIDE_FILES) {
        const path = join(options.copySideFilesFrom, name);
        if (yield* exists(path)) {
          files[name] = yield* readFile(path).pipe(
            Effect.mapError((e) => new WriteFailed({ path: join(dir, name), reason: e.reason })),
          );
        }
      }
    }
    Object.assign(files, extraFiles);
    for (const name of Object.keys(files).sort()) yield* writeFileAtomic(join(dir, name), files[name]);
    const hf = toHfConfig(config, options.baseConfig);
    if (options.dtype === "BF16") hf.torch_dtype = "bfloat16";
    yield* writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(hf, null, 2) + "\n");
  });

/**
 * The parameter name a stored tensor stands for, or undefined for tensors HF checkpoints may carry that
 * this implementation recomputes (rotary tables, GPT-2's causal-mask buffers, a tied LM head).
 */
const canonicalName = (name: string, config: ModelConfig): string | undefined => {
  if (name.endsWith(".rotary_emb.inv_freq")) return undefined;
  if (config.tieEmbeddings && name === "lm_head.weight") return undefined;
  if (config.architecture === "gpt2") {
    if (/\.attn\.(bias|masked_bias)$/.test(name)) return undefined;
    // The original GPT-2 checkpoints store the GPT2Model's names, without the "transformer." prefix.
    if (name !== "lm_head.weight" && !name.startsWith("transformer.")) return `transformer.${name}`;
  }
  return name;
};

/** A shard file name from the index: a plain file inside the checkpoint directory, nothing else. */
const isPlainFileName = (name: string): boolean =>
  name.length > 0 && !name.includes("/") && !name.includes("\\") && name !== "." && name !== ".." &&
  !name.includes("\0");

/**
 * Which shard holds each tensor, from model.safetensors.index.json; shard names that would leave the
 * directory (absolute paths, "..", separators, symlinks pointing outside) are refused.
 */
const readIndex = (dir: string) =>
  Effect.gen(function* () {
    const path = join(dir, INDEX_FILE);
    const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path, reason }));
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(yield* readFile(path)));
    } catch (e) {
      return yield* fail(`not JSON: ${message(e)}`);
    }
    const map = (json as { weight_map?: unknown } | null)?.weight_map;
    if (typeof map !== "object" || map === null || Array.isArray(map)) {
      return yield* fail('no "weight_map" object');
    }
    const shards = new Map<string, string[]>();
    for (const [tensor, file] of Object.entries(map)) {
      if (typeof file !== "string" || !isPlainFileName(file)) {
        return yield* fail(
          `weight_map entry "${tensor}": ${JSON.stringify(file)} is not a file name inside the checkpoint`,
        );
      }
      shards.set(file, [...shards.get(file) ?? [], tensor]);
    }
    const root = yield* Effect.promise(() => Deno.realPath(dir).catch(() => dir));
    for (const file of shards.keys()) {
      const real = yield* Effect.promise(() => Deno.realPath(join(dir, file)).catch(() => undefined));
      if (real === undefined) return yield* fail(`shard ${file} is missing`);
      if (!real.startsWith(`${root}/`)) return yield* fail(`shard ${file} resolves outside the checkpoint`);
    }
    return shards;
  });

/** Every stored tensor by name, from the single file or all shards (each shard read once, in turn). */
const readTensors = (dir: string) =>
  Effect.gen(function* () {
    const single = join(dir, WEIGHTS_FILE);
    if (yield* exists(single)) {
      return { tensors: (yield* readSafetensorsFile(single)).tensors, where: single };
    }
    const malformed = (reason: string) => Effect.fail(new CheckpointMalformed({ path: dir, reason }));
    if (!(yield* exists(join(dir, INDEX_FILE)))) {
      if (yield* exists(join(dir, "pytorch_model.bin"))) {
        return yield* malformed("only safetensors weights are supported, found pytorch_model.bin");
      }
      return yield* malformed(`neither ${WEIGHTS_FILE} nor ${INDEX_FILE} is present`);
    }
    const shards = yield* readIndex(dir);
    const tensors = new Map<string, NamedTensor>();
    for (const [file, listed] of [...shards].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
      const path = join(dir, file);
      const contents = yield* readSafetensorsFile(path);
      for (const name of listed) {
        if (!contents.tensors.has(name)) {
          return yield* Effect.fail(
            new CheckpointMalformed({ path, reason: `tensor ${name} listed in ${INDEX_FILE} is not in it` }),
          );
        }
      }
      for (const [name, t] of contents.tensors) {
        if (!listed.includes(name)) {
          return yield* Effect.fail(
            new CheckpointMalformed({ path, reason: `tensor ${name} is not listed for it in ${INDEX_FILE}` }),
          );
        }
        tensors.set(name, t);
      }
    }
    return { tensors, where: join(dir, INDEX_FILE) };
  });

export interface LoadedCheckpoint {
  readonly config: ModelConfig;
  readonly params: Params;
  /** The config.json as stored (pass it to `saveCheckpoint`'s baseConfig to keep its other fields). */
  readonly hfConfig: Record<string, unknown>;
}

/**
 * The model configuration of a checkpoint directory (its config.json), without the weights: the command
 * line checks a --model directory with it before building a pipeline, so a missing or malformed one is
 * reported at once rather than when the training step reaches it.
 */
export const loadCheckpointConfig = (
  dir: string,
): Effect.Effect<{ config: ModelConfig; json: unknown }, CheckpointMalformed | FileUnreadable> =>
  Effect.gen(function* () {
    const configPath = join(dir, CONFIG_FILE);
    const configText = new TextDecoder().decode(yield* readFile(configPath));
    let json: unknown;
    try {
      json = JSON.parse(configText);
    } catch (e) {
      return yield* Effect.fail(
        new CheckpointMalformed({ path: configPath, reason: `not JSON: ${message(e)}` }),
      );
    }
    return { config: yield* fromHfConfig(json, configPath), json };
  });

/**
 * Loads a checkpoint directory written by `saveCheckpoint` or by transformers. Every expected tensor
 * must be present with the shape config.json implies; unknown tensors are refused rather than silently
 * dropped.
 */
export const loadCheckpoint = (
  dir: string,
): Effect.Effect<LoadedCheckpoint, CheckpointMalformed | FileUnreadable> =>
  Effect.gen(function* () {
    const { config, json } = yield* loadCheckpointConfig(dir);

    const { tensors, where } = yield* readTensors(dir);
    const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path: where, reason }));
    const expected = paramShapes(config);
    const arrays = new Map<string, Float32Array>();
    for (const [stored, t] of tensors) {
      const name = canonicalName(stored, config);
      if (name === undefined) continue;
      const shape = expected.get(name);
      if (shape === undefined) {
        return yield* fail(`unexpected tensor ${stored} (not part of this ${config.architecture} model)`);
      }
      if (arrays.has(name)) return yield* fail(`tensor ${name} is stored twice`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        return yield* fail(
          `tensor ${stored} has shape [${t.shape.join(", ")}], config.json implies [${shape.join(", ")}]`,
        );
      }
      arrays.set(name, t.data);
    }
    for (const name of expected.keys()) {
      if (!arrays.has(name)) return yield* fail(`missing tensor ${name}`);
    }
    return {
      config,
      params: paramsFromArrays(config, arrays),
      hfConfig: json as Record<string, unknown>,
    };
  });
