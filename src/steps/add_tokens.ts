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
 */
import { Effect, Schema } from "effect";
import { TokenizerMismatch } from "../errors.ts";
import { FUNCTIONAL_TOKENS } from "../data/functional_tokens.ts";
import { checkVocab, loadTokenizer } from "../data/tokenizer.ts";
import { growTokenizer } from "../data/tokenizer_grow.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { disposeParams } from "../model/model.ts";
import { growVocabulary } from "../model/resize.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep } from "../engine/step.ts";

export const AddTokensConfig = Schema.Struct({
  /** The tokens to add, in id order. */
  tokens: Schema.Array(Schema.String.pipe(Schema.minLength(1))).pipe(Schema.minItems(1)),
});
export type AddTokensConfig = typeof AddTokensConfig.Type;

export const ADD_FUNCTIONAL_TOKENS: AddTokensConfig = { tokens: [...FUNCTIONAL_TOKENS] };

const isFile = (path: string) => Deno.stat(path).then((i) => i.isFile, () => false);

export const addTokensStep = defineStep({
  name: "addTokens",
  version: 1,
  description:
    "add special tokens to a tokenizer and grow the checkpoint's embedding and LM head (mean rows)",
  config: AddTokensConfig,
  inputs: ["model", "tokenizer"] as const,
  optionalInputs: ["tokenizer"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const given = inputs.model!;
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

      // The saved tokenizer must give each token exactly its id, both ways.
      const after = yield* loadTokenizer(out);
      for (const [i, token] of config.tokens.entries()) {
        const ids = after.encode(`a${token}b`);
        const single = after.encode(token);
        if (
          single.length !== 1 || single[0] !== grown.ids[i] || !ids.includes(grown.ids[i]) ||
          after.decode(single) !== token
        ) {
          return yield* new TokenizerMismatch({
            path: out,
            reason: `${JSON.stringify(token)} encodes as [${single.join(", ")}], not as its new id ${
              grown.ids[i]
            }`,
          });
        }
      }
      yield* checkVocab(after, modelConfig.vocabSize);
      const report = {
        oldVocabSize: loaded.config.vocabSize,
        newVocabSize: modelConfig.vocabSize,
        tokenizerVocabSize: after.vocabSize,
        tokens: Object.fromEntries(config.tokens.map((t, i) => [t, grown.ids[i]])),
      };
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2) + "\n");
      ctx.reporter.log(
        `[${ctx.node}] added ${config.tokens.length} tokens (ids ${grown.ids[0]}..${
          grown.ids[grown.ids.length - 1]
        }); ` +
          `vocabulary ${loaded.config.vocabSize} -> ${modelConfig.vocabSize} rows`,
      );
    }),
});
