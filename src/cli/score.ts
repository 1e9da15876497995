/**
 * `score`: the log-probability a Hugging Face checkpoint gives each token of a text.
 *
 *   deno task score --model DIR (--text TEXT | --ids 1,2,3) [--json] [--backend auto|tensorflow|cpu-blas|cpu|webgpu]
 *
 * With --json it prints {"tokens": [{"id", "text", "logprob"}, ...]}: logprob is
 * log p(token_t | tokens_<t) (natural log), null for the first token; text is the token's text, or null
 * when the directory has no tokenizer. The text is encoded without special tokens.
 */
import { Command, Options } from "@effect/cli";
import * as tf from "@tensorflow/tfjs";
import { Effect, Option } from "effect";
import { useBackend } from "../backend/backend.ts";
import { readsSynchronously } from "../backend/webgpu.ts";
import { headInputAt, lmHeadWeight } from "../model/model.ts";
import { loadAdapter } from "../model/peft.ts";
import { goldLogProbs, goldLogProbsOps } from "../train/head_loss.ts";
import { adapter, backend } from "./flags.ts";
import { checkLength, inputIds, loadModelDir } from "./hf_model.ts";

export interface ScoredToken {
  readonly id: number;
  readonly text: string | null;
  readonly logprob: number | null;
}

/** Every token of the input with its log-probability given the tokens before it. */
export const runScore = (
  req: { readonly model: string; readonly adapter?: string; readonly text?: string; readonly ids?: string },
) =>
  Effect.scoped(Effect.gen(function* () {
    const model = yield* loadModelDir(req.model);
    if (req.adapter !== undefined) yield* loadAdapter(req.adapter, model.config, model.params);
    const ids = yield* inputIds(model, req.text, req.ids, { text: "--text", ids: "--ids" });
    yield* checkLength(model.config, ids.length, "--text / --ids");
    // Position t - 1 predicts token t; the LM head and log-softmax go chunk by chunk (never [T x vocab]).
    const hidden = tf.tidy(() =>
      headInputAt(
        model.params,
        model.config,
        tf.tensor2d([ids], [1, ids.length], "int32"),
        Int32Array.from({ length: Math.max(0, ids.length - 1) }, (_, t) => t),
      )
    );
    const targets = Int32Array.from(ids.slice(1)), head = lmHeadWeight(model.params, model.config);
    // On webgpu the stock-tfjs formulation, read asynchronously (src/backend/webgpu.ts).
    const logProbs = yield* Effect.promise(async () => {
      try {
        return readsSynchronously()
          ? goldLogProbs(hidden, head, targets)
          : await goldLogProbsOps(hidden, head, targets);
      } finally {
        hidden.dispose();
      }
    });
    const tokens: ScoredToken[] = ids.map((id, t) => ({
      id,
      text: model.tokenizer ? model.tokenizer.tokenText(id) : null,
      logprob: t === 0 ? null : logProbs[t - 1],
    }));
    return { tokens };
  }));

const model = Options.text("model").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription(
    "Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer files)",
  ),
);
const text = Options.text("text").pipe(
  Options.withPseudoName("TEXT"),
  Options.withDescription("text to score (encoded without special tokens)"),
  Options.optional,
);
const ids = Options.text("ids").pipe(
  Options.withPseudoName("IDS"),
  Options.withDescription("token ids to score, e.g. 1,2,3"),
  Options.optional,
);
const json = Options.boolean("json").pipe(
  Options.withDescription('print {"tokens": [{"id", "text", "logprob"}, ...]}'),
);

export const scoreCommand = Command.make(
  "score",
  { model, text, ids, json, adapter, backend },
  (a) =>
    Effect.gen(function* () {
      yield* useBackend(a.backend);
      const result = yield* runScore({
        model: a.model,
        adapter: Option.getOrUndefined(a.adapter),
        text: Option.getOrUndefined(a.text),
        ids: Option.getOrUndefined(a.ids),
      });
      if (a.json) console.log(JSON.stringify(result));
      else {
        for (const t of result.tokens) {
          console.log(
            `${String(t.id).padStart(8)}  ${
              t.logprob === null ? "       -" : t.logprob.toFixed(4).padStart(8)
            }  ${JSON.stringify(t.text)}`,
          );
        }
        const total = result.tokens.reduce((s, t) => s + (t.logprob ?? 0), 0);
        console.log(
          `total log-probability ${total.toFixed(4)} over ${result.tokens.length - 1} predicted tokens`,
        );
      }
    }),
).pipe(Command.withDescription("log-probability of each token under a Hugging Face checkpoint"));
