/**
 * What the `generate` and `score` commands share: loading a Hugging Face checkpoint directory with its
 * tokenizer when it has one, turning --prompt/--text or --ids into token ids, and the EOS ids the
 * checkpoint declares.
 */
import { Effect } from "effect";
import {
  type CheckpointMalformed,
  type FileUnreadable,
  InvalidConfig,
  type TokenizerMismatch,
} from "../errors.ts";
import { loadTokenizer, type TextTokenizer } from "../data/tokenizer.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { contextLength, type ModelConfig } from "../model/config.ts";
import { disposeParams, type Params } from "../model/model.ts";

export interface LoadedModel {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly params: Params;
  readonly hfConfig: Record<string, unknown>;
  /** Absent when the directory has no tokenizer files (then only --ids works). */
  readonly tokenizer?: TextTokenizer;
}

const isFile = (path: string) => Deno.stat(path).then((i) => i.isFile, () => false);

/**
 * Loads `dir` as a scoped resource (parameters are released when the scope closes). The tokenizer is
 * loaded only when tokenizer.json or vocab.json + merges.txt are present.
 */
export const loadModelDir = (dir: string) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const { config, params, hfConfig } = yield* loadCheckpoint(dir);
      const hasTokenizer = (yield* Effect.promise(() => isFile(`${dir}/tokenizer.json`))) ||
        (yield* Effect.promise(() => isFile(`${dir}/vocab.json`)));
      const tokenizer = hasTokenizer
        ? yield* loadTokenizer(dir).pipe(Effect.tapError(() => Effect.sync(() => disposeParams(params))))
        : undefined;
      return { dir, config, params, hfConfig, tokenizer } satisfies LoadedModel;
    }),
    (m) => Effect.sync(() => disposeParams(m.params)),
  );

export type LoadError = CheckpointMalformed | FileUnreadable | TokenizerMismatch;

/**
 * Parses "1,2,3" into ids of the model's vocabulary; `option` names the flag in errors.
 */
export const parseIds = (
  text: string,
  config: ModelConfig,
  option: string,
): Effect.Effect<number[], InvalidConfig> => {
  const parts = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const ids = parts.map(Number);
  const bad = parts.find((s, i) => !/^\d+$/.test(s) || !(ids[i] < config.vocabSize));
  if (parts.length === 0) {
    return Effect.fail(new InvalidConfig({ where: option, reason: "no token ids given" }));
  }
  if (bad !== undefined) {
    return Effect.fail(
      new InvalidConfig({ where: option, reason: `"${bad}" is not a token id in [0, ${config.vocabSize})` }),
    );
  }
  return Effect.succeed(ids);
};

/**
 * The token ids to run: exactly one of `text` (encoded with the model's tokenizer, no special tokens
 * added) and `ids` must be given.
 */
export const inputIds = (
  model: LoadedModel,
  text: string | undefined,
  ids: string | undefined,
  names: { readonly text: string; readonly ids: string },
): Effect.Effect<number[], InvalidConfig> =>
  Effect.gen(function* () {
    if ((text === undefined) === (ids === undefined)) {
      return yield* new InvalidConfig({
        where: `${names.text} / ${names.ids}`,
        reason: `give exactly one of ${names.text} and ${names.ids}`,
      });
    }
    if (ids !== undefined) return yield* parseIds(ids, model.config, names.ids);
    if (model.tokenizer === undefined) {
      return yield* new InvalidConfig({
        where: names.text,
        reason:
          `${model.dir} has no tokenizer files (tokenizer.json or vocab.json + merges.txt); use ${names.ids}`,
      });
    }
    const encoded = model.tokenizer.encode(text!);
    if (encoded.length === 0) {
      return yield* new InvalidConfig({ where: names.text, reason: "encodes to no tokens" });
    }
    const outside = encoded.find((id) => id >= model.config.vocabSize);
    if (outside !== undefined) {
      return yield* new InvalidConfig({
        where: names.text,
        reason:
          `the tokenizer gives id ${outside}, outside the model's vocabulary of ${model.config.vocabSize}`,
      });
    }
    return encoded;
  });

/** Fails when `length` positions exceed what the model computes exactly. */
export const checkLength = (
  config: ModelConfig,
  length: number,
  where: string,
): Effect.Effect<void, InvalidConfig> =>
  length > contextLength(config) && (config.architecture === "gpt2" || config.slidingWindow !== undefined)
    ? Effect.fail(
      new InvalidConfig({
        where,
        reason: `${length} positions exceed the model's ${contextLength(config)} (${
          config.architecture === "gpt2" ? "n_positions" : "sliding_window"
        })`,
      }),
    )
    : Effect.void;

/** EOS ids from config.json and generation_config.json (a number or a list), else the tokenizer's. */
export const eosIds = (model: LoadedModel): Effect.Effect<number[]> =>
  Effect.gen(function* () {
    const generation = yield* Effect.promise(() =>
      Deno.readTextFile(`${model.dir}/generation_config.json`).then((t) => JSON.parse(t), () => ({}))
    );
    const ids = new Set<number>();
    for (const source of [model.hfConfig.eos_token_id, generation?.eos_token_id]) {
      for (const id of Array.isArray(source) ? source : [source]) {
        if (typeof id === "number" && Number.isInteger(id)) ids.add(id);
      }
    }
    if (ids.size === 0 && model.tokenizer) ids.add(model.tokenizer.eosId);
    return [...ids];
  });
