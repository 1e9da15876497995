/**
 * From collected per-seed results to what the report shows: per dataset and model the mean and spread
 * over seeds, and each model's paired difference to the baseline with its bootstrap interval.
 */
import type { Collected, ModelResult } from "./collect.ts";
import { type Comparison, significanceSentences } from "./significance.ts";
import { type BootstrapOptions, mean, pairedBootstrap, std } from "./stats.ts";

export interface Spread {
  readonly mean: number;
  readonly std: number;
}

export interface ModelRow {
  readonly dataset: string;
  readonly method: string;
  readonly model: string;
  readonly seeds: ReadonlyArray<number>;
  readonly accuracy: Spread;
  readonly format_rate: Spread;
  readonly key_loss: Spread;
  /** Mean over seeds of the tokens trained (sum of loss weights over every stage). */
  readonly tokens: number;
  /** Mean over seeds of the compute seconds of the model's nodes. */
  readonly seconds: number;
  readonly n: number;
}

export interface ComparisonRow extends Comparison {
  /** Seeds paired with the baseline's same seed, and the difference for each. */
  readonly seeds: ReadonlyArray<number>;
  readonly perSeed: ReadonlyArray<number>;
  readonly significant: boolean;
}

export interface Analysis {
  readonly baseline: string;
  readonly datasets: ReadonlyArray<string>;
  readonly rows: ReadonlyArray<ModelRow>;
  readonly comparisons: ReadonlyArray<ComparisonRow>;
  readonly sentences: ReadonlyArray<string>;
  readonly bootstrap: BootstrapOptions;
  /** Why a comparison could not be made (no baseline for a seed, different test examples). */
  readonly notes: ReadonlyArray<string>;
  /**
   * Models of one dataset that behaved identically for every seed (the same answer right or wrong on every
   * test example and the same key loss to the last bit): in effect one model trained under two names.
   */
  readonly identical: ReadonlyArray<{ readonly dataset: string; readonly models: ReadonlyArray<string> }>;
}

/** Groups of models (per dataset) whose every seed gave the same per-example results and key loss. */
export const identicalModels = (
  models: ReadonlyArray<ModelResult>,
): Array<{ dataset: string; models: string[] }> => {
  const fingerprint = (g: ModelResult[]) =>
    JSON.stringify(g.map((m) => [m.seed, m.key_loss, m.correct, m.sources]));
  const byPrint = new Map<string, { dataset: string; models: string[] }>();
  for (const g of groups(models)) {
    const k = JSON.stringify([g[0].dataset, fingerprint(g)]);
    const entry = byPrint.get(k) ?? { dataset: g[0].dataset, models: [] };
    entry.models.push(g[0].model);
    byPrint.set(k, entry);
  }
  return [...byPrint.values()].filter((e) => e.models.length > 1);
};

const spread = (xs: number[]): Spread => ({ mean: mean(xs), std: std(xs) });

const groups = (models: ReadonlyArray<ModelResult>) => {
  const out = new Map<string, ModelResult[]>();
  for (const m of models) {
    const k = JSON.stringify([m.dataset, m.model]);
    out.set(k, [...(out.get(k) ?? []), m]);
  }
  return [...out.values()].map((g) => [...g].sort((a, b) => a.seed - b.seed));
};

export const analyse = (
  collected: Collected,
  baseline: string,
  bootstrap: BootstrapOptions,
): Analysis => {
  const notes: string[] = [];
  const rows: ModelRow[] = groups(collected.models).map((g) => ({
    dataset: g[0].dataset,
    method: g[0].method,
    model: g[0].model,
    seeds: g.map((m) => m.seed),
    accuracy: spread(g.map((m) => m.accuracy)),
    format_rate: spread(g.map((m) => m.format_rate)),
    key_loss: spread(g.map((m) => m.key_loss)),
    tokens: mean(g.map((m) => m.tokens)),
    seconds: mean(g.map((m) => m.seconds)),
    n: g[0].n,
  }));
  const comparisons: ComparisonRow[] = [];
  for (const g of groups(collected.models)) {
    const { dataset, model } = g[0];
    if (model === baseline) continue;
    const pairs = g.flatMap((m) => {
      const base = collected.models.find((b) =>
        b.dataset === dataset && b.model === baseline && b.seed === m.seed
      );
      if (!base) {
        notes.push(`${dataset}: no ${baseline} run with seed ${m.seed} to pair ${model} with`);
        return [];
      }
      if (base.sources.join("\n") !== m.sources.join("\n")) {
        notes.push(
          `${dataset}: ${model} and ${baseline} (seed ${m.seed}) were evaluated on different examples`,
        );
        return [];
      }
      return [{ seed: m.seed, method: m.correct, base: base.correct }];
    });
    if (pairs.length === 0) continue;
    const d = pairedBootstrap(pairs.map((p) => p.method), pairs.map((p) => p.base), bootstrap);
    comparisons.push({
      dataset,
      model,
      baseline,
      diff: d.diff,
      lo: d.lo,
      hi: d.hi,
      level: d.level,
      seeds: pairs.map((p) => p.seed),
      perSeed: d.perSeed,
      significant: d.significant,
    });
  }
  return {
    baseline,
    datasets: [...new Set(collected.models.map((m) => m.dataset))],
    rows,
    comparisons,
    sentences: significanceSentences(comparisons),
    bootstrap,
    notes,
    identical: identicalModels(collected.models),
  };
};
