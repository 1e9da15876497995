/**
 * How the comparison report writes its numbers and fixed texts, shared by the Markdown and HTML forms so
 * that both say the same thing in the same words.
 */
import type { Analysis, ModelRow } from "./analyse.ts";
import type { Spread } from "./analyse.ts";

/** "93.5% ± 1.2" (percent, std in points). */
export const pctSpread = (s: Spread): string =>
  `${(100 * s.mean).toFixed(1)}% ± ${(100 * (Number.isFinite(s.std) ? s.std : 0)).toFixed(1)}`;

/** "+3.0" / "−1.5": a difference of shares in points, with its sign. */
export const signedPoints = (x: number): string =>
  `${x >= 0 ? "+" : "\u2212"}${Math.abs(100 * x).toFixed(1)}`;

export const tokens = (x: number): string =>
  x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0);

export const seconds = (x: number): string => x >= 600 ? `${(x / 60).toFixed(1)} min` : `${x.toFixed(1)} s`;

/** Columns of the per-model table, as [header, cell] pairs. */
export const modelColumns: ReadonlyArray<readonly [string, (r: ModelRow) => string]> = [
  ["model", (r) => r.model],
  ["method", (r) => r.method],
  ["accuracy", (r) => pctSpread(r.accuracy)],
  ["format rate", (r) => pctSpread(r.format_rate)],
  ["key loss", (r) => `${r.key_loss.mean.toFixed(3)} ± ${(r.key_loss.std || 0).toFixed(3)}`],
  ["tokens trained", (r) => tokens(r.tokens)],
  ["compute time", (r) => seconds(r.seconds)],
  ["seeds", (r) => r.seeds.join(", ")],
];

/** What the bootstrap resamples and what the other columns mean, in words. */
export const methodNotes = (a: Analysis): string[] => [
  `Accuracy is exact match of the extracted answer under greedy decoding; format rate is the share of ` +
  `generations in which the answer could be located at all. Mean ± sample standard deviation over seeds; a ` +
  `seed sets the model's initialisation and the data order.`,
  `Difference to ${a.baseline}: for each seed, the model minus ${a.baseline} trained with the same seed, on the ` +
  `same test examples; the table shows the mean over seeds. The ${Math.round(100 * a.bootstrap.level)}% ` +
  `interval is a percentile bootstrap with ${a.bootstrap.resamples} replicates (generator seed ` +
  `${a.bootstrap.seed}): each replicate draws the seeds with replacement and, independently, the test examples ` +
  `with replacement (the same examples for every seed and for both models, so pairs stay paired), and ` +
  `averages the per-example differences. A difference is significant when its interval excludes 0.`,
  `Tokens trained: the sum of the loss weights over every optimizer step of every stage that led to the ` +
  `model (train_summary.json). Compute time: seconds spent computing the nodes that led to the model, its ` +
  `evaluation included, averaged over seeds; a node two models share (identical steps are computed once) is ` +
  `counted for each of them, and a node reused from the cache counts the time it took when it was computed.`,
];

/** One sentence per group of models that behaved identically (Analysis.identical). */
export const identicalLines = (a: Analysis): string[] =>
  a.identical.map(({ dataset, models }) =>
    `On ${dataset}, ${models.slice(0, -1).join(", ")} and ${
      models.at(-1)
    } gave the same answer on every test ` +
    `example and the same key loss for every seed: they trained the same model under different names ` +
    `(e.g. two objectives whose gradients coincide).`
  );
