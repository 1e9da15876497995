/**
 * The plain statement of which differences to the baseline are significant, generated from the
 * intervals themselves so the words can never disagree with the numbers next to them.
 */

export interface Comparison {
  readonly dataset: string;
  readonly model: string;
  readonly baseline: string;
  /** Mean difference in accuracy (a share, 0.01 = one point). */
  readonly diff: number;
  readonly lo: number;
  readonly hi: number;
  readonly level: number;
}

export type Verdict = "better" | "worse" | "not significant";

/** Significant when the interval excludes 0: better above it, worse below it. */
export const verdict = (c: Comparison): Verdict =>
  c.lo > 0 ? "better" : c.hi < 0 ? "worse" : "not significant";

const points = (x: number) => `${x >= 0 ? "+" : "\u2212"}${Math.abs(100 * x).toFixed(1)}`;

/** "+3.0 points, 95% interval [+1.0, +5.0]" */
export const describeInterval = (c: Comparison): string =>
  `${points(c.diff)} points, ${Math.round(100 * c.level)}% interval [${points(c.lo)}, ${points(c.hi)}]`;

const list = (items: string[]): string =>
  items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;

/** One sentence per dataset, in the order the comparisons come. */
export const significanceSentences = (comparisons: ReadonlyArray<Comparison>): string[] => {
  const datasets = [...new Set(comparisons.map((c) => c.dataset))];
  return datasets.map((dataset) => {
    const cs = comparisons.filter((c) => c.dataset === dataset);
    const baseline = cs[0].baseline;
    const level = `${Math.round(100 * cs[0].level)}%`;
    const significant = cs.filter((c) => verdict(c) !== "not significant");
    const rest = cs.filter((c) => verdict(c) === "not significant").map((c) => c.model);
    if (significant.length === 0) {
      return `On ${dataset}, no method differs significantly from ${baseline} in accuracy: every ${level} ` +
        `interval of the difference includes 0.`;
    }
    const clauses = significant.map((c) =>
      `${c.model} is significantly ${verdict(c)} than ${baseline} (${describeInterval(c)})`
    );
    const tail = rest.length === 0
      ? ""
      : `; the ${rest.length === 1 ? "difference" : "differences"} of ${list(rest)} ` +
        `${rest.length === 1 ? "is" : "are"} not significant (the interval includes 0)`;
    return `On ${dataset}, ${list(clauses)}${tail}.`;
  });
};
