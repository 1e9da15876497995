/**
 * Step `s3ftSelect`: the training targets of S3FT, "Selective Self-to-Supervised Fine-Tuning for
 * Generalization in Large Language Models" (Gupta et al., arXiv 2502.08130).
 *
 * For each training prompt x the model generates y_hat (greedy). If the judge accepts it (the answer
 * matches the gold answer) the example trains on (x, y_hat): the model's own wording of a correct
 * solution. Otherwise the model is asked to paraphrase the gold response, conditioned on the prompt and
 * the gold response; if the judge accepts the paraphrase the example trains on (x, paraphrase); else on
 * the gold response. Every example keeps exactly one target, trained on all of its response tokens.
 *
 * Deviations: the paper's judge for math is answer matching too, but its paraphrase prompt is written
 * for instruction-tuned models; ours (`paraphraseTemplate`) is a plain template, and a small model that
 * never saw such a prompt will rarely produce an accepted paraphrase (the gold branch then takes over,
 * as the method prescribes). Generated responses are kept as the model's token ids.
 *
 * With `maxExamples` only a seeded subset of the examples is used (smoke runs).
 *
 * Output: masked.jsonl (weights 1 on every response token, a `branch` field per record) and report.json
 * (how many examples took each branch).
 */
import { Effect, Schema } from "effect";
import { DataFormat, defaultLocator } from "../data/formats.ts";
import { LocatorSpec } from "../data/locate.ts";
import { type MaskedRecord, readJsonl, type TokenRecord, writeJsonl } from "../data/records.ts";
import { stableSubset } from "../data/select.ts";
import type { TextTokenizer } from "../data/tokenizer.ts";
import { writeFileAtomic } from "../io/fs.ts";
import type { ToolkitError } from "../errors.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { acceptedGeneration, generateAll, type Generated, generatedRecord } from "./self_generation.ts";
import { loadModel } from "./shared.ts";

/** `{prompt}`: the rendered prompt (it ends with the template's newline); `{response}`: the gold response. */
export const PARAPHRASE_TEMPLATE =
  "{prompt}Reference solution: {response}\nThe same solution in other words:\n";

/** Decoder of the step's config; the fields are documented on the interface `S3ftSelectConfig`. */
export const S3ftSelectConfig: Schema.Schema<S3ftSelectConfig> = Schema.Struct({
  format: DataFormat,
  /** Defaults to the format's locator, the one that found the gold keys. */
  locator: Schema.optional(LocatorSpec),
  maxNewTokens: Schema.Int.pipe(Schema.positive()),
  batchSize: Schema.Int.pipe(Schema.positive()),
  paraphraseTemplate: Schema.String.pipe(
    Schema.filter((t) => t.includes("{prompt}") && t.includes("{response}"), {
      message: () => "must contain {prompt} and {response}",
    }),
  ),
  /** Keep only this many examples, chosen by a seeded hash of the prompt (src/data/select.ts). */
  maxExamples: Schema.optional(Schema.Int.pipe(Schema.positive())),
  seed: Schema.Int,
});

/**
 * The `s3ftSelect` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface S3ftSelectConfig {
  /** The data format, which also names the default locator. */
  readonly format: DataFormat;
  /** Defaults to the format's locator, the one that found the gold keys. */
  readonly locator?: LocatorSpec;
  /** Tokens generated per response at most. */
  readonly maxNewTokens: number;
  /** Rows per batched generation call. */
  readonly batchSize: number;
  /** The paraphrase request; must contain {prompt} and {response} (see PARAPHRASE_TEMPLATE). */
  readonly paraphraseTemplate: string;
  /** Keep only this many examples, chosen by a seeded hash of the prompt (src/data/select.ts). */
  readonly maxExamples?: number;
  /** Seed of the random choices. */
  readonly seed: number;
}

/**
 * The paraphrase request for one example: the template with {prompt} the decoded prompt tokens and
 * {response} the decoded gold response, its EOS dropped (it would end the request mid-way). One pass with
 * a replacer function, so the texts go in as they are: a replacement string would expand "$$", "$&" and
 * the like (GSM8K writes "$$<<4*15=60.00>>60.00"), and a prompt containing "{response}" would be filled.
 */
export const paraphrasePrompt = (tok: TextTokenizer, template: string, record: TokenRecord): string => {
  const prompt = tok.decode(record.input_ids.slice(0, record.prompt_length));
  const response = record.input_ids.slice(record.prompt_length);
  const gold = tok.decode(response.at(-1) === tok.eosId ? response.slice(0, -1) : response);
  return template.replace(/\{prompt\}|\{response\}/g, (slot) => slot === "{prompt}" ? prompt : gold);
};

export type Branch = "self" | "paraphrase" | "gold";

export interface Choice {
  readonly branch: Branch;
  /** The generated response trained on; undefined for the gold branch. */
  readonly response?: Generated;
}

/**
 * S3FT's selection. `own[i]` is the model's response to prompt i; `paraphrase(indices)` generates
 * paraphrases of the gold responses of those examples only (the ones whose own response was rejected);
 * `accepts(i, response)` is the judge.
 */
export const selectTargets = (
  own: ReadonlyArray<Generated>,
  paraphrase: (indices: ReadonlyArray<number>) => ReadonlyArray<Generated>,
  accepts: (i: number, response: Generated) => boolean,
): Choice[] => {
  const choices: Choice[] = own.map((
    g,
    i,
  ) => (accepts(i, g) ? { branch: "self", response: g } : { branch: "gold" }));
  const rejected = choices.flatMap((c, i) => (c.branch === "self" ? [] : [i]));
  if (rejected.length === 0) return choices;
  const paraphrases = paraphrase(rejected);
  rejected.forEach((i, k) => {
    if (accepts(i, paraphrases[k])) choices[i] = { branch: "paraphrase", response: paraphrases[k] };
  });
  return choices;
};

/** The `s3ftSelect` step: S3FT: train on the model's own correct response, else an accepted paraphrase, else gold. */
export const s3ftSelectStep: Step<
  S3ftSelectConfig,
  "model" | "data" | "tokenizer",
  ToolkitError
> = defineStep({
  name: "s3ftSelect",
  // 2: only finished (EOS-terminated) generations are accepted.
  // 3: "$" patterns in the gold response ("$$" in GSM8K) reach the paraphrase request unexpanded.
  version: 3,
  description: "S3FT: train on the model's own correct response, else an accepted paraphrase, else gold",
  config: S3ftSelectConfig,
  inputs: ["model", "data", "tokenizer"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const locator = config.locator ?? defaultLocator[config.format];
      const { tok, config: mc, params } = yield* loadModel(inputs.model!, inputs.tokenizer!);
      const all = yield* readJsonl<TokenRecord>(`${inputs.data}/tokens.jsonl`);
      const started = performance.now();
      const allPrompts = all.map((r) => r.input_ids.slice(0, r.prompt_length));
      const chosen = config.maxExamples === undefined
        ? all.map((_, i) => i)
        : stableSubset(config.seed, allPrompts, config.maxExamples).sort((a, b) => a - b);
      const rows = chosen.map((i) => all[i]);
      const prompts = chosen.map((i) => allPrompts[i]);
      const progress = ctx.reporter.progress(`[${ctx.node}]`);
      let done = 0, total = rows.length;
      const gen = (ps: ReadonlyArray<ReadonlyArray<number>>) => {
        const before = done;
        return generateAll(params, mc, ps, {
          maxNewTokens: config.maxNewTokens,
          batchSize: config.batchSize,
          eosId: tok.eosId,
          onBatch: (n) => {
            done = before + n;
            progress.update({
              done,
              total,
              rate: done / ((performance.now() - started) / 1000),
              unit: "gen",
            });
          },
        });
      };
      const choices = selectTargets(
        gen(prompts),
        (indices) => {
          total += indices.length;
          return gen(
            indices.map((i) => tok.encode(paraphrasePrompt(tok, config.paraphraseTemplate, rows[i]))),
          );
        },
        // Only a response that ended (EOS) is accepted: a cut-off one would teach the model not to stop.
        (i, g) => acceptedGeneration(tok, g, rows[i].answer, locator),
      );
      progress.finish();
      const out: Array<MaskedRecord & { branch: Branch }> = choices.map((c, i) => {
        const r = c.response
          ? generatedRecord(tok, locator, rows[i].source, prompts[i], c.response, rows[i].answer)
          : rows[i];
        const weights = r.input_ids.map((_, t) => (t >= Math.max(r.prompt_length, 1) ? 1 : 0));
        return { ...r, weights, branch: c.branch };
      });
      yield* writeJsonl(`${ctx.dir}/masked.jsonl`, out);
      const count = (b: Branch) => choices.filter((c) => c.branch === b).length;
      const report = {
        examples: rows.length,
        self: count("self"),
        paraphrase: count("paraphrase"),
        gold: count("gold"),
      };
      // No wall time here: report.json is content, and its digest keys what follows (the manifest has the
      // seconds; engine/store.ts).
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
      ctx.reporter.log(
        `[${ctx.node}] targets: ${report.self} own responses, ${report.paraphrase} paraphrases, ${report.gold} gold`,
      );
    }),
});
