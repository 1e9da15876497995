/**
 * Step `addTokens`: vocabulary growth. Turns a checkpoint and its tokenizer into a larger checkpoint and
 * tokenizer: the tokens (RFTT's 16 functional tokens by default) become special added tokens, one id each,
 * and the embedding and (untied) LM head get rows for them, initialised to the mean of the existing rows
 * (see ../model/resize.ts). Everything after this step sees an ordinary Hugging Face checkpoint whose
 * config.json `vocab_size` equals its embedding rows.
 *
 * The embedding keeps its size when the new ids fit in rows it already has (a checkpoint padded beyond its
 * tokenizer, as Qwen2's are); those rows are re-initialised to the mean.
 *
 * Inputs: `model`, a checkpoint directory (or an artifact holding one in model/); `tokenizer`, optional,
 * the tokenizer to grow (default: the checkpoint's own). Output: model/ (config.json, model.safetensors,
 * tokenizer files) and report.json (old and new sizes, each token's id).
 *
 * Without `model` (a model trained from scratch, whose embedding is made for the grown vocabulary), only
 * the tokenizer grows: its files are the output, at the artifact's top level, so the artifact is a
 * tokenizer path. (A tokenizer path may also be an artifact holding model/: see loadTokenizer.)
 */
import { Effect, Schema } from "effect";
import { TokenizerMismatch, type ToolkitError } from "../errors.ts";
import { FUNCTIONAL_TOKENS } from "../data/functional_tokens.ts";
import { checkVocab, loadTokenizer } from "../data/tokenizer.ts";
import { growTokenizer } from "../data/tokenizer_grow.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { disposeParams } from "../model/model.ts";
import { growVocabulary } from "../model/resize.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step, type StepContext } from "../engine/step.ts";

/** Decoder of the step's config; the fields are documented on the interface `AddTokensConfig`. */
export const AddTokensConfig: Schema.Schema<AddTokensConfig> = Schema.Struct({
  /** The tokens to add, in id order. */
  tokens: Schema.Array(Schema.String.pipe(Schema.minLength(1))).pipe(Schema.minItems(1)),
});
/** The `addTokens` step's config as plain data, spelled out for the API docs. */
export interface AddTokensConfig {
  /** The tokens to add, in id order. */
  readonly tokens: ReadonlyArray<string>;
}

/** The config that adds RFTT's 16 functional tokens. */
export const ADD_FUNCTIONAL_TOKENS: AddTokensConfig = { tokens: [...FUNCTIONAL_TOKENS] };

const isFile = (path: string) => Deno.stat(path).then((i) => i.isFile, () => false);

/** The `addTokens` step: add tokens to a tokenizer and grow the checkpoint's embedding and LM head. */
export const addTokensStep: Step<AddTokensConfig, "model" | "tokenizer", ToolkitError> = defineStep({
  name: "addTokens",
  version: 1,
  description:
    "add special tokens to a tokenizer and grow the checkpoint's embedding and LM head (mean rows)",
  config: AddTokensConfig,
  inputs: ["model", "tokenizer"] as const,
  optionalInputs: ["model", "tokenizer"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      if (inputs.model === undefined) {
        if (inputs.tokenizer === undefined) {
          return yield* new TokenizerMismatch({
            path: ctx.dir,
            reason: "neither a model nor a tokenizer to grow",
          });
        }
        const before = yield* loadTokenizer(inputs.tokenizer);
        const grown = yield* growTokenizer(inputs.tokenizer, config.tokens);
        for (const [name, content] of Object.entries(grown.files)) {
          yield* writeFileAtomic(`${ctx.dir}/${name}`, content);
        }
        yield* checkAdded(ctx.dir, config.tokens, grown.ids);
        return yield* finish(ctx, config.tokens, grown.ids, {
          oldVocabSize: before.vocabSize,
          newVocabSize: grown.vocabSize,
          tokenizerVocabSize: grown.vocabSize,
        });
      }
      const given = inputs.model;
      const modelDir = (yield* Effect.promise(() => isFile(`${given}/model/config.json`)))
        ? `${given}/model`
        : given;
      const tokenizerPath = inputs.tokenizer ?? modelDir;
      const loaded = yield* loadCheckpoint(modelDir);
      yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(loaded.params)));
      const before = yield* loadTokenizer(tokenizerPath);
      yield* checkVocab(before, loaded.config.vocabSize);
      const grown = yield* growTokenizer(tokenizerPath, config.tokens);
      const rows = Math.max(loaded.config.vocabSize, grown.vocabSize);
      const inside = grown.ids.filter((id) => id < loaded.config.vocabSize);
      const { config: modelConfig, params } = growVocabulary(loaded.config, loaded.params, rows, inside);
      yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(params)));
      const out = `${ctx.dir}/model`;
      yield* saveCheckpoint(out, modelConfig, params, grown.files, {
        baseConfig: loaded.hfConfig,
        copySideFilesFrom: modelDir,
      });

      const after = yield* checkAdded(out, config.tokens, grown.ids);
      yield* checkVocab(after, modelConfig.vocabSize);
      yield* finish(ctx, config.tokens, grown.ids, {
        oldVocabSize: loaded.config.vocabSize,
        newVocabSize: modelConfig.vocabSize,
        tokenizerVocabSize: after.vocabSize,
      });
    }),
});

/** The saved tokenizer in `dir` gives each token exactly its id, both ways; returns it. */
const checkAdded = (dir: string, tokens: ReadonlyArray<string>, added: ReadonlyArray<number>) =>
  Effect.gen(function* () {
    const after = yield* loadTokenizer(dir);
    for (const [i, token] of tokens.entries()) {
      const ids = after.encode(`a${token}b`);
      const single = after.encode(token);
      if (
        single.length !== 1 || single[0] !== added[i] || !ids.includes(added[i]) ||
        after.decode(single) !== token
      ) {
        return yield* new TokenizerMismatch({
          path: dir,
          reason: `${JSON.stringify(token)} encodes as [${single.join(", ")}], not as its new id ${added[i]}`,
        });
      }
    }
    return after;
  });

/** report.json and the log line. */
const finish = (
  ctx: StepContext,
  tokens: ReadonlyArray<string>,
  ids: ReadonlyArray<number>,
  sizes: {
    readonly oldVocabSize: number;
    readonly newVocabSize: number;
    readonly tokenizerVocabSize: number;
  },
) =>
  Effect.gen(function* () {
    const report = { ...sizes, tokens: Object.fromEntries(tokens.map((t, i) => [t, ids[i]])) };
    yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2) + "\n");
    ctx.reporter.log(
      `[${ctx.node}] added ${tokens.length} tokens (ids ${ids[0]}..${ids[ids.length - 1]}); ` +
        `vocabulary ${sizes.oldVocabSize} -> ${sizes.newVocabSize} rows`,
    );
  });
