/**
 * Step `criticalTokens`: the training data of CFT, "Enhancing Large Language Model Reasoning via Critical
 * Token Fine-Tuning" (arXiv 2510.10974).
 *
 * For each examined training prompt the model writes its greedy solution; only solutions the judge
 * accepts (answer match) are used. For every position t of such a solution the token is replaced by the
 * model's 2nd and 3rd most probable tokens at t, and the model continues greedily from there; the token
 * is critical when every replacement leads to a wrong answer. The output trains on the critical tokens
 * of the model's own correct solutions only (weight 1 there, 0 elsewhere).
 *
 * All continuations of all examined examples are batched into `batchSize`-row calls of the KV-cached
 * generator, and a position stops being searched once one replacement reaches the answer (it cannot be
 * critical any more). report.json records how many continuations were run.
 *
 * Details and deviations:
 * - positions are the generated tokens; the EOS that ends a solution is not perturbed (the answer is
 *   complete by then);
 * - `maxExamples` examined examples, chosen by a seeded hash (src/data/select.ts): the search costs
 *   2 x (response length) continuations per example;
 * - when no examined solution has a critical token (e.g. a warm-up model that solves nothing yet) the
 *   step still writes the examined solutions, every weight 0, so the train step leaves the model as it
 *   started; it says so in the log and in report.json (`nothingToTrain`).
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Schema } from "effect";
import { DataFormat, defaultLocator } from "../data/formats.ts";
import { LocatorSpec } from "../data/locate.ts";
import { type MaskedRecord, readJsonl, type TokenRecord, writeJsonl } from "../data/records.ts";
import { stableSubset } from "../data/select.ts";
import { writeFileAtomic } from "../io/fs.ts";
import type { ToolkitError } from "../errors.ts";
import { defineStep, type Step } from "../engine/step.ts";
import type { ModelConfig } from "../model/config.ts";
import { forward, type Params, tidyValues } from "../model/model.ts";
import { acceptedGeneration, answerMatches, generateAll, generatedRecord } from "./self_generation.ts";
import type { TextTokenizer } from "../data/tokenizer.ts";
import { loadModel } from "./shared.ts";

/** Decoder of the step's config; the fields are documented on the interface `CriticalTokensConfig`. */
export const CriticalTokensConfig: Schema.Schema<CriticalTokensConfig> = Schema.Struct({
  format: DataFormat,
  /** Defaults to the format's locator, the one that found the gold keys. */
  locator: Schema.optional(LocatorSpec),
  maxNewTokens: Schema.Int.pipe(Schema.positive()),
  /** Rows per batched generation call (solutions and continuations). */
  batchSize: Schema.Int.pipe(Schema.positive()),
  /** Replacements tried per position: the model's 2nd, 3rd, ... most probable tokens (the paper: 2). */
  alternatives: Schema.Int.pipe(Schema.positive()),
  /** Examples examined, chosen by a seeded hash; all when absent. */
  maxExamples: Schema.optional(Schema.Int.pipe(Schema.positive())),
  seed: Schema.Int,
});

/**
 * The `criticalTokens` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface CriticalTokensConfig {
  /** The data format, which also names the default locator. */
  readonly format: DataFormat;
  /** Defaults to the format's locator, the one that found the gold keys. */
  readonly locator?: LocatorSpec;
  /** Tokens generated per response at most. */
  readonly maxNewTokens: number;
  /** Rows per batched generation call. */
  readonly batchSize: number;
  /** Replacements tried per position: the model's 2nd, 3rd, ... most probable tokens (the paper: 2). */
  readonly alternatives: number;
  /** Examples examined, chosen by a seeded hash; all when absent. */
  readonly maxExamples?: number;
  /** Seed of the random choices. */
  readonly seed: number;
}

/** One correct solution to search: the prompt, the response tokens (no EOS). */
export interface Solution {
  readonly prompt: ReadonlyArray<number>;
  readonly response: ReadonlyArray<number>;
}

/** The model-dependent parts of the search, separated so a test can construct a case by hand. */
export interface CriticalSearch {
  /** For each response position t, the replacement tokens to try (never response[t] itself). */
  readonly alternatives: (s: Solution) => number[][];
  /** Greedy continuations of prefixes (prompt + response[0..t) + replacement), one call per batch. */
  readonly continueAll: (prefixes: ReadonlyArray<Prefix>) => number[][];
  /** Whether response tokens (prefix part and continuation) give solution `index`'s gold answer. */
  readonly correct: (index: number, response: ReadonlyArray<number>) => boolean;
}

export interface Prefix {
  readonly prompt: ReadonlyArray<number>;
  /** Response tokens so far, the replacement last. */
  readonly response: ReadonlyArray<number>;
}

export interface CriticalResult {
  /** critical[i][t]: every replacement of token t of solution i leads to a wrong answer. */
  readonly critical: boolean[][];
  /** Continuations actually run. */
  readonly continuations: number;
}

/**
 * The counterfactual search over every position of every solution, continuations batched. Replacements
 * are tried in rounds, the k-th most probable alternative in round k, and a position leaves the search
 * as soon as one replacement still gives the answer: the verdicts are those of trying every replacement
 * (critical means all of them fail), for fewer continuations. Within a round, continuations are batched
 * by prefix length, so rows in one call need similar numbers of new tokens.
 */
export const findCriticalTokens = (
  solutions: ReadonlyArray<Solution>,
  search: CriticalSearch,
  batchSize: number,
): CriticalResult => {
  const alternatives = solutions.map((s) => search.alternatives(s));
  // A position starts critical and stops being so as soon as one replacement still gives the answer.
  const critical = solutions.map((s) => s.response.map(() => true));
  const rounds = Math.max(0, ...alternatives.flatMap((a) => a.map((alts) => alts.length)));
  let continuations = 0;
  for (let round = 0; round < rounds; round++) {
    const jobs: Array<{ i: number; t: number; prefix: Prefix }> = [];
    solutions.forEach((s, i) => {
      alternatives[i].forEach((alts, t) => {
        if (critical[i][t] && round < alts.length) {
          jobs.push({
            i,
            t,
            prefix: { prompt: s.prompt, response: [...s.response.slice(0, t), alts[round]] },
          });
        }
      });
    });
    jobs.sort((a, b) => a.prefix.response.length - b.prefix.response.length);
    for (let j = 0; j < jobs.length; j += batchSize) {
      const chunk = jobs.slice(j, j + batchSize);
      const continued = search.continueAll(chunk.map((c) => c.prefix));
      chunk.forEach((c, k) => {
        if (search.correct(c.i, [...c.prefix.response, ...continued[k]])) critical[c.i][c.t] = false;
      });
    }
    continuations += jobs.length;
  }
  return { critical, continuations };
};

/** Indices of the `n` largest values of row `row` of logits [rows, vocab], largest first (first on ties). */
export const topK = (logits: Float32Array, row: number, vocab: number, n: number): number[] => {
  const best: number[] = [];
  for (let v = 0; v < vocab; v++) {
    const x = logits[row * vocab + v];
    let at = best.length;
    while (at > 0 && logits[row * vocab + best[at - 1]] < x) at--;
    if (at < n) {
      best.splice(at, 0, v);
      if (best.length > n) best.pop();
    }
  }
  return best;
};

/** The model's replacements at every position: its top tokens there, the solution's own token excluded. */
export const modelAlternatives =
  (params: Params, c: ModelConfig, count: number) => (s: Solution): number[][] => {
    const ids = [...s.prompt, ...s.response];
    const logits = tidyValues(() =>
      forward(params, c, tf.tensor2d(Int32Array.from(ids), [1, ids.length], "int32"))
    );
    // Logits at position p predict token p + 1: response token t is predicted at prompt.length + t - 1.
    return s.response.map((token, t) =>
      topK(logits, s.prompt.length + t - 1, c.vocabSize, count + 1).filter((v) => v !== token).slice(0, count)
    );
  };

/**
 * Greedy continuations of prefixes in one batched call. A continuation gets the budget its solution had
 * left, maxNewTokens minus the response tokens already in the prefix, so a perturbed solution is never
 * longer than a greedy one could be; rows do not influence each other, so each keeps only its own budget
 * of the batch's longest run.
 */
export const modelContinuations = (
  params: Params,
  c: ModelConfig,
  eosId: number,
  maxNewTokens: number,
  onBatch: (rows: number) => void = () => {},
) =>
(prefixes: ReadonlyArray<Prefix>): number[][] => {
  const budgets = prefixes.map((p) => Math.max(0, maxNewTokens - p.response.length));
  const out = generateAll(params, c, prefixes.map((p) => [...p.prompt, ...p.response]), {
    maxNewTokens: Math.max(...budgets),
    batchSize: prefixes.length,
    eosId,
  });
  onBatch(prefixes.length);
  return out.map((g, k) => g.ids.slice(0, budgets[k]));
};

/** What the search found, ready to write: the training records and the counts for report.json. */
interface CriticalData {
  readonly records: MaskedRecord[];
  readonly examined: number;
  readonly correctSolutions: number;
  readonly continuations: number;
  readonly responseTokensSearched: number;
  readonly criticalTokens: number;
  /** No examined solution has a critical token: `records` are the solutions with every weight 0. */
  readonly nothingToTrain: boolean;
}

/**
 * The whole computation, without I/O: the model's greedy solutions of `rows`, the judge, the
 * counterfactual search on the correct ones, and the records weighted on their critical tokens.
 * `onContinuations` is told how many continuations ran, for progress.
 */
const criticalTokenData = (
  model: { readonly tok: TextTokenizer; readonly config: ModelConfig; readonly params: Params },
  rows: ReadonlyArray<TokenRecord>,
  config: CriticalTokensConfig,
  locator: LocatorSpec,
  onContinuations: (done: number, total: number) => void,
): CriticalData => {
  const { tok, config: mc, params } = model;
  const prompts = rows.map((r) => r.input_ids.slice(0, r.prompt_length));

  // 1. The model's greedy solutions; the judge keeps the correct ones.
  const greedy = generateAll(params, mc, prompts, {
    maxNewTokens: config.maxNewTokens,
    batchSize: config.batchSize,
    eosId: tok.eosId,
  });
  const correctIdx = rows.map((_, j) => j).filter((j) =>
    // A solution must have ended (EOS): a cut-off one is not a solution to learn from.
    acceptedGeneration(tok, greedy[j], rows[j].answer, locator)
  );
  const solutions: Solution[] = correctIdx.map((j) => ({ prompt: prompts[j], response: greedy[j].ids }));

  // 2. Counterfactual continuations, batched.
  const total = solutions.reduce((n, s) => n + s.response.length * config.alternatives, 0);
  let done = 0;
  const result = findCriticalTokens(solutions, {
    alternatives: modelAlternatives(params, mc, config.alternatives),
    continueAll: modelContinuations(params, mc, tok.eosId, config.maxNewTokens, (n) => {
      done += n;
      onContinuations(done, total);
    }),
    correct: (i, response) => answerMatches(tok.decode(response), rows[correctIdx[i]].answer, locator),
  }, config.batchSize);

  // 3. Records: the correct solutions, weight 1 on their critical tokens.
  const records: MaskedRecord[] = [];
  correctIdx.forEach((j, i) => {
    const r = generatedRecord(tok, locator, rows[j].source, prompts[j], greedy[j], rows[j].answer);
    const weights = r.input_ids.map((_, t) => {
      const at = t - r.prompt_length;
      return at >= 0 && at < result.critical[i].length && result.critical[i][at] ? 1 : 0;
    });
    if (weights.some((w) => w > 0)) records.push({ ...r, weights });
  });
  const criticalTokens = records.reduce((n, r) => n + r.weights.reduce((a, b) => a + b, 0), 0);
  const nothingToTrain = records.length === 0;
  if (nothingToTrain) {
    rows.forEach((r, j) => {
      const g = generatedRecord(tok, locator, r.source, prompts[j], greedy[j], r.answer);
      records.push({ ...g, weights: g.input_ids.map(() => 0) });
    });
  }
  return {
    records,
    examined: rows.length,
    correctSolutions: solutions.length,
    continuations: result.continuations,
    responseTokensSearched: solutions.reduce((n, s) => n + s.response.length, 0),
    criticalTokens,
    nothingToTrain,
  };
};

/** The `criticalTokens` step: CFT: tokens of correct self-generated solutions whose every replacement gives a wrong answer. */
export const criticalTokensStep: Step<
  CriticalTokensConfig,
  "model" | "data" | "tokenizer",
  ToolkitError
> = defineStep({
  name: "criticalTokens",
  // 2: only finished (EOS-terminated) greedy solutions count as correct.
  version: 2,
  description: "CFT: tokens of correct self-generated solutions whose every replacement gives a wrong answer",
  config: CriticalTokensConfig,
  inputs: ["model", "data", "tokenizer"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const locator = config.locator ?? defaultLocator[config.format];
      const model = yield* loadModel(inputs.model!, inputs.tokenizer!);
      const all = yield* readJsonl<TokenRecord>(`${inputs.data}/tokens.jsonl`);
      const started = performance.now();
      const prompts = all.map((r) => r.input_ids.slice(0, r.prompt_length));
      const rows = stableSubset(config.seed, prompts, config.maxExamples ?? all.length).map((i) => all[i]);

      const progress = ctx.reporter.progress(`[${ctx.node}]`);
      const found = criticalTokenData(model, rows, config, locator, (done, total) =>
        progress.update({ done, total, rate: done / ((performance.now() - started) / 1000), unit: "cont" }));
      progress.finish();

      yield* writeJsonl(`${ctx.dir}/masked.jsonl`, found.records);
      const { records, ...counts } = found;
      const report = {
        examined: counts.examined,
        correctSolutions: counts.correctSolutions,
        continuations: counts.continuations,
        responseTokensSearched: counts.responseTokensSearched,
        criticalTokens: counts.criticalTokens,
        criticalShare: counts.responseTokensSearched > 0
          ? counts.criticalTokens / counts.responseTokensSearched
          : 0,
        examplesKept: counts.nothingToTrain ? 0 : records.length,
        nothingToTrain: counts.nothingToTrain,
      };
      // No wall time here: report.json is content, and its digest keys what follows (the manifest has the
      // seconds; engine/store.ts).
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
      ctx.reporter.log(
        `[${ctx.node}] ${report.correctSolutions}/${report.examined} greedy solutions correct; ` +
          `${report.continuations} continuations; ${report.criticalTokens} critical of ` +
          `${report.responseTokensSearched} tokens in ${report.examplesKept} examples` +
          (report.nothingToTrain
            ? " — nothing to train on: every weight is 0 and the model will not change"
            : ""),
      );
    }),
});
