/**
 * LoRA adapters on disk in Hugging Face PEFT's layout, so `PeftModel.from_pretrained(base, dir)` loads
 * what the toolkit writes and the toolkit applies what PEFT writes: a directory with adapter_config.json
 * (peft_type "LORA", r, lora_alpha, lora_dropout, target_modules, use_rslora, fan_in_fan_out, ...) and
 * adapter_model.safetensors holding `base_model.model.<module>.lora_A.weight` [r, in] and
 * `base_model.model.<module>.lora_B.weight` [out, r] for every adapted module, in float32.
 *
 * Loading checks the adapter against the base model: every module target_modules selects must have both
 * tensors with the base's shapes, and no other tensor may be present (one LoRA silently dropped or
 * ignored would change the model without a word). Features PEFT offers that this reader does not compute
 * (per-module rank/alpha patterns, trained biases, modules_to_save, DoRA) are refused rather than ignored.
 */
import { onHost } from "../backend/webgpu.ts";
import { Effect } from "effect";
import { AdapterInvalid, type FileUnreadable, WriteFailed } from "../errors.ts";
import { readFile, writeFileAtomic } from "../io/fs.ts";
import type { ModelConfig } from "./config.ts";
import {
  attachAdapter,
  fanInFanOut,
  loraAName,
  loraBName,
  type LoraModule,
  loraOf,
  loraScaling,
  type LoraSettings,
  targetModules,
} from "./lora.ts";
import { paramShapes } from "./model.ts";
import type { Params } from "./params.ts";
import { type NamedTensor, parseSafetensors, writeSafetensorsFile } from "./safetensors.ts";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";
/** PEFT's prefix of every saved tensor name (PeftModel wraps the model as base_model.model). */
export const PEFT_PREFIX = "base_model.model.";

const join = (dir: string, name: string): string => `${dir.replace(/\/+$/, "")}/${name}`;
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The adapter_config.json PEFT writes for these settings (fields PEFT's LoraConfig reads back). */
export const adapterConfigJson = (
  c: ModelConfig,
  settings: LoraSettings,
  targets: ReadonlyArray<string>,
  baseModel: string,
): Record<string, unknown> => ({
  peft_type: "LORA",
  task_type: "CAUSAL_LM",
  base_model_name_or_path: baseModel,
  r: settings.r,
  lora_alpha: settings.alpha,
  lora_dropout: settings.dropout,
  target_modules: [...targets],
  use_rslora: settings.useRslora ?? false,
  fan_in_fan_out: fanInFanOut(c),
  bias: "none",
  init_lora_weights: true,
  inference_mode: true,
  modules_to_save: null,
  rank_pattern: {},
  alpha_pattern: {},
  use_dora: false,
});

/**
 * Writes the adapter `params` carries (./lora.ts attachAdapter) into `dir`: the weights first, the
 * config last. `settings` and `targets` are what it was made with; `baseModel` goes to
 * base_model_name_or_path.
 */
export const saveAdapter = (
  dir: string,
  c: ModelConfig,
  params: Params,
  settings: LoraSettings,
  targets: ReadonlyArray<string>,
  baseModel: string,
): Effect.Effect<void, WriteFailed> =>
  Effect.gen(function* () {
    const runtime = loraOf(params);
    if (runtime === undefined) {
      return yield* new WriteFailed({ path: dir, reason: "the model carries no LoRA adapter" });
    }
    yield* Effect.tryPromise({
      try: () => Deno.mkdir(dir, { recursive: true }),
      catch: (e) => new WriteFailed({ path: dir, reason: message(e) }),
    });
    yield* Effect.promise(() => onHost(params.values()));
    const tensors = new Map<string, NamedTensor>();
    for (const { module } of runtime.modules) {
      for (const name of [loraAName(module), loraBName(module)]) {
        const v = params.get(name)!;
        tensors.set(PEFT_PREFIX + name, { shape: v.shape, data: v.dataSync() as Float32Array });
      }
    }
    yield* writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: "pt" });
    yield* writeFileAtomic(
      join(dir, ADAPTER_CONFIG_FILE),
      JSON.stringify(adapterConfigJson(c, settings, targets, baseModel), null, 2) + "\n",
    );
  });

/** An adapter as read from disk, before it is attached. */
export interface AdapterFile {
  readonly settings: LoraSettings;
  /** target_modules as stored: a list of names/suffixes, or a regular expression. */
  readonly targets: ReadonlyArray<string> | string;
  readonly tensors: ReadonlyMap<string, NamedTensor>;
}

const isEmptyPattern = (x: unknown) =>
  x === undefined || x === null || (typeof x === "object" && Object.keys(x as object).length === 0);

/** Reads and checks adapter_config.json and the weights' header (not yet against a model). */
export const readAdapter = (dir: string): Effect.Effect<AdapterFile, AdapterInvalid | FileUnreadable> =>
  Effect.gen(function* () {
    const configPath = join(dir, ADAPTER_CONFIG_FILE);
    const bad = (path: string, reason: string) => Effect.fail(new AdapterInvalid({ path, reason }));
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(new TextDecoder().decode(yield* readFile(configPath)));
    } catch (e) {
      return yield* bad(configPath, `not JSON: ${message(e).replace(/\s*\n\s*/g, " ")}`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* bad(configPath, "not a JSON object");
    }
    if (json.peft_type !== "LORA") {
      return yield* bad(configPath, `peft_type ${JSON.stringify(json.peft_type)} is not "LORA"`);
    }
    const r = json.r, alpha = json.lora_alpha, dropout = json.lora_dropout ?? 0;
    if (typeof r !== "number" || !Number.isInteger(r) || r <= 0) {
      return yield* bad(configPath, `field "r": ${JSON.stringify(r)} is not a positive integer`);
    }
    if (typeof alpha !== "number" || !(alpha > 0) || !Number.isFinite(alpha)) {
      return yield* bad(configPath, `field "lora_alpha": ${JSON.stringify(alpha)} is not a positive number`);
    }
    if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
      return yield* bad(configPath, `field "lora_dropout": ${JSON.stringify(dropout)} is not in [0, 1)`);
    }
    const targets = json.target_modules;
    const targetList = typeof targets === "string"
      ? targets
      : Array.isArray(targets) && targets.every((t) => typeof t === "string")
      ? targets as string[]
      : undefined;
    if (targetList === undefined) {
      return yield* bad(configPath, 'field "target_modules" is neither a list of names nor a pattern');
    }
    for (
      const [field, ok] of [
        ["bias", json.bias === undefined || json.bias === "none"],
        ["rank_pattern", isEmptyPattern(json.rank_pattern)],
        ["alpha_pattern", isEmptyPattern(json.alpha_pattern)],
        ["modules_to_save", json.modules_to_save === undefined || json.modules_to_save === null],
        ["use_dora", json.use_dora === undefined || json.use_dora === false],
        ["layers_to_transform", json.layers_to_transform === undefined || json.layers_to_transform === null],
      ] as const
    ) {
      if (!ok) {
        return yield* bad(configPath, `field "${field}": ${JSON.stringify(json[field])} is not supported`);
      }
    }
    if (json.use_rslora !== undefined && typeof json.use_rslora !== "boolean") {
      return yield* bad(configPath, 'field "use_rslora" is not a boolean');
    }
    const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
    const file = yield* parseSafetensors(yield* readFile(weightsPath), weightsPath).pipe(
      Effect.catchTag("CheckpointMalformed", (e) => bad(weightsPath, e.reason)),
    );
    return {
      settings: {
        r,
        alpha,
        dropout,
        useRslora: json.use_rslora === true,
        ...(typeof targetList === "string" ? {} : { targets: targetList }),
      },
      targets: targetList,
      tensors: file.tensors,
    };
  });

/** An adapter checked against a model: the modules it adapts, with the values of their A and B. */
export interface CheckedAdapter {
  readonly modules: ReadonlyArray<LoraModule>;
  readonly values: ReadonlyMap<string, { readonly a: Float32Array; readonly b: Float32Array }>;
}

/**
 * Checks `adapter` against a model of config `c` (its parameter shapes only, so nothing is loaded):
 * every module target_modules selects has both tensors with the base's shapes and r, and no other tensor
 * is present. Tensor names may carry PEFT's "base_model.model." prefix or not; PEFT's adapter-name infix
 * (".default.") in a saved file is not PEFT's layout and is refused as an extra tensor.
 */
export const checkAdapter = (
  dir: string,
  adapter: AdapterFile,
  c: ModelConfig,
): Effect.Effect<CheckedAdapter, AdapterInvalid> =>
  Effect.gen(function* () {
    const where = join(dir, ADAPTER_WEIGHTS_FILE);
    const bad = (reason: string) => Effect.fail(new AdapterInvalid({ path: where, reason }));
    const modules = targetModules(c, paramShapes(c), adapter.targets);
    if (modules.length === 0) {
      return yield* Effect.fail(
        new AdapterInvalid({
          path: join(dir, ADAPTER_CONFIG_FILE),
          reason: `target_modules ${
            JSON.stringify(adapter.targets)
          } select no projection of this ${c.architecture} model`,
        }),
      );
    }
    const stripped = new Map<string, NamedTensor>();
    for (const [name, t] of adapter.tensors) {
      stripped.set(name.startsWith(PEFT_PREFIX) ? name.slice(PEFT_PREFIX.length) : name, t);
    }
    const { r } = adapter.settings;
    const values = new Map<string, { a: Float32Array; b: Float32Array }>();
    for (const { module, inFeatures, outFeatures } of modules) {
      const a = stripped.get(loraAName(module)), b = stripped.get(loraBName(module));
      if (a === undefined || b === undefined) {
        return yield* bad(`missing ${PEFT_PREFIX}${a === undefined ? loraAName(module) : loraBName(module)}`);
      }
      for (
        const [t, name, want] of [[a, loraAName(module), [r, inFeatures]], [b, loraBName(module), [
          outFeatures,
          r,
        ]]] as const
      ) {
        if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) {
          return yield* bad(
            `${PEFT_PREFIX}${name} has shape [${t.shape.join(", ")}], the base model and r = ${r} imply [${
              want.join(", ")
            }]`,
          );
        }
      }
      values.set(module, { a: a.data, b: b.data });
    }
    const expected = new Set(modules.flatMap(({ module }) => [loraAName(module), loraBName(module)]));
    const extra = [...stripped.keys()].filter((n) => !expected.has(n));
    if (extra.length > 0) {
      return yield* bad(
        `${extra.length} tensor(s) adapt no targeted module of this ${c.architecture} model (first: ${
          extra[0]
        })`,
      );
    }
    return { modules, values };
  });

/**
 * Checks `adapter` against the base model `params` of config `c` (checkAdapter) and attaches it
 * (./lora.ts). `dropout` replaces the file's lora_dropout (training an adapter further with another).
 */
export const applyAdapter = (
  dir: string,
  adapter: AdapterFile,
  c: ModelConfig,
  params: Params,
  dropout: number = adapter.settings.dropout,
): Effect.Effect<Params, AdapterInvalid> =>
  Effect.map(
    checkAdapter(dir, adapter, c),
    ({ modules, values }) =>
      attachAdapter(
        params,
        { scaling: loraScaling(adapter.settings), dropout, modules },
        values,
        adapter.settings.r,
      ),
  );

/**
 * Reads the adapter in `dir` and attaches it to the base model `params` (mutated and returned); `dropout`
 * replaces the file's lora_dropout.
 */
export const loadAdapter = (
  dir: string,
  c: ModelConfig,
  params: Params,
  dropout?: number,
): Effect.Effect<{ params: Params; adapter: AdapterFile }, AdapterInvalid | FileUnreadable> =>
  Effect.gen(function* () {
    const adapter = yield* readAdapter(dir);
    return { params: yield* applyAdapter(dir, adapter, c, params, dropout), adapter };
  });
