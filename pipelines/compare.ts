/**
 * The comparison: every method of the registry (methods.ts) over several seeds and datasets, in one
 * pipeline, then a report (src/steps/report.ts) with mean ± std over seeds, paired bootstrap intervals
 * against SFT, charts and the mask viewer.
 *
 * Each method x seed x dataset gets its own node names ("arith/s1/sftkey/..."), but the cache is keyed
 * by content, not by name: data preparation is one set of nodes per dataset, and two methods that add
 * the same training node (same masks, config, seed and start) compute it once.
 *
 *   deno task pipeline compare            # the full comparison (runs/compare/report.html)
 *   deno task pipeline compare --quick    # a smoke run with a tiny budget (runs/compare-quick/)
 *   deno task pipeline compare-finetune   # the fine-tuning regime: every method fine-tunes fixtures/base
 *   deno task pipeline compare-finetune --jobs 2   # the same, two steps at once (one per core)
 *
 * Two regimes. From scratch (no --model): tiny models trained on the arithmetic fixtures at the halved
 * step budget below. Fine-tuning (`compare-finetune`, or `compare --model DIR`): every method fine-tunes
 * the checkpoint on the word problems with the fine-tuning defaults (budget.ts, in epochs), over five
 * seeds, and the report gains the checkpoint's own row ("base").
 *
 * A method added to the registry appears in the comparison without any change here.
 */
import type { DataFormat } from "../src/data/formats.ts";
import { type NodeRef, PipelineBuilder } from "../src/engine/pipeline.ts";
import type { Step } from "../src/engine/step.ts";
import { type BootstrapOptions, DEFAULT_BOOTSTRAP } from "../src/report/stats.ts";
import { addReport, type ReportConfig } from "../src/steps/report.ts";
import { fixture, type PipelineOptions, prepareData } from "./data.ts";
import { type Budget } from "./budget.ts";
import { evaluate, type Method, methodContext, modelNode, recordBudget } from "./method_context.ts";
import { methods as registry, RFTT_METHODS } from "./methods.ts";
import { QUICK_VOTE_PROBLEMS, RL_ARMS, searchVote, warmUp } from "./rftt.ts";
import { addRlCharts } from "../src/steps/rl_charts.ts";
import { addScalingChart } from "../src/steps/scaling_chart.ts";
import { takeRowsStep } from "../src/steps/take_rows.ts";

export interface DatasetSpec {
  /** Short name: the node prefix and the name in the report. */
  readonly name: string;
  readonly train: string;
  readonly test: string;
  readonly format: DataFormat;
  /** --max-length and --max-new-tokens for this set (default: the options'). */
  readonly maxLength?: number;
  readonly maxNewTokens?: number;
}

/** The embedded synthetic reasoning set (tag format) and the GSM8K-format set. */
export const DEFAULT_DATASETS: ReadonlyArray<DatasetSpec> = [
  { name: "arith", train: fixture("arith/train.jsonl"), test: fixture("arith/test.jsonl"), format: "tags" },
  {
    name: "gsm8k",
    train: fixture("gsm8k-mini/train.jsonl"),
    test: fixture("gsm8k-mini/test.jsonl"),
    format: "gsm8k",
  },
];

/**
 * The fine-tuning regime's target tasks, with length budgets that cover them with the base tokenizer
 * (tools/word_stats.ts: longest training example 176 / 219 tokens, longest test response 110 / 158).
 */
export const FINE_TUNE_DATASETS: ReadonlyArray<DatasetSpec> = [
  {
    name: "word-tags",
    train: fixture("word-tags/train.jsonl"),
    test: fixture("word-tags/test.jsonl"),
    format: "tags",
    maxLength: 192,
    maxNewTokens: 128,
  },
  {
    name: "word-gsm8k",
    train: fixture("word-gsm8k/train.jsonl"),
    test: fixture("word-gsm8k/test.jsonl"),
    format: "gsm8k",
    maxLength: 240,
    maxNewTokens: 176,
  },
];

/** The fine-tuning regime's seeds: at least five, so that the intervals mean something. */
export const FINE_TUNE_SEEDS = 5;

/** The registry without the RFTT arms (pipelines/rftt.ts), whose warm-up search reads arithmetic prompts only. */
const withoutRftt = (methods: Readonly<Record<string, Method>>): Record<string, Method> =>
  Object.fromEntries(Object.entries(methods).filter(([name]) => !RFTT_METHODS.includes(name)));

/**
 * `--quick` in the fine-tuning regime: a model 30 times the from-scratch one makes every step and
 * generation slower, so the 10-minute smoke run takes 2 seeds (the fewest with a spread) on the first
 * dataset (word-tags), half the comparison's quick budget and a smaller slice (at the from-scratch quick
 * shape one seed took about 400 s on the idle 2-core machine). The full comparison runs both datasets over
 * FINE_TUNE_SEEDS at the fine-tuning budget.
 */
export const FINE_TUNE_QUICK = {
  seeds: 2,
  datasets: 1,
  budget: { stageOneSteps: 4, stageTwoSteps: 2 },
  limit: { train: 64, test: 20 },
} as const;

/**
 * Test problems the comparison's test-time search votes on, per dataset and seed (the first ones of the
 * test set): 8 rollouts of a tree per problem cost about 0.75 s on two cores, so the whole test set for
 * 2 models x 3 seeds x 2 datasets would add about 30 minutes.
 */
export const COMPARE_VOTE_PROBLEMS = 50;

/** Where one method's nodes for one dataset and seed are named: `arith/s1/sftkey/...`. */
const runPrefix = (dataset: string, seed: number, method: string): string => `${dataset}/s${seed}/${method}/`;

/** The starting checkpoint's own row: evaluated as it is, the same node for every seed (cached once). */
export const baseRow: Method = (
  ctx,
): Record<string, NodeRef> => (ctx.data.base ? { base: ctx.data.base } : {});

export interface CompareConfig {
  readonly datasets?: ReadonlyArray<DatasetSpec>;
  /** Default: three seeds from --seed (0, 1, 2). */
  readonly seeds?: ReadonlyArray<number>;
  readonly methods?: Readonly<Record<string, Method>>;
  /** The model label every other model is compared with. */
  readonly baseline?: string;
  readonly bootstrap?: BootstrapOptions;
  readonly maskExamples?: number;
}

/**
 * The full comparison's budget: half the optimizer steps of a single method's pipeline (budget.ts:
 * 400 + 150). The registry's methods x 3 seeds x 2 datasets add up to 84 distinct training runs, 30,900
 * optimizer steps at the single-pipeline budget. Measured on two cores with the cpu-blas backend
 * (2026-12-02): 731 s at this halved budget and 1127 s at the single-pipeline one, run side by side; the
 * plain cpu backend trains about 7 times slower, an estimated 1.5 hours at this budget, which the halving
 * keeps inside the two hours the issue allows. `--stage-one-steps 400 --stage-two-steps 150` restores it.
 */
export const COMPARE_BUDGET: NonNullable<PipelineOptions["budget"]> = {
  stageOneSteps: 200,
  stageTwoSteps: 75,
};

/**
 * `--quick` for the comparison: the whole comparison must finish within 10 minutes on two cores, so
 * each training run gets fewer and smaller steps than a single pipeline's quick budget (budget.ts). The
 * numbers are meaningless; the run proves the whole comparison works end to end.
 */
export const COMPARE_QUICK_BUDGET: NonNullable<PipelineOptions["budget"]> = {
  stageOneSteps: 8,
  stageTwoSteps: 4,
  train: { batchSize: 16, microBatchSize: 16, warmupSteps: 2, checkpointEvery: 6 },
};

/**
 * --quick also trains and evaluates on a slice: with so few steps, generation (evaluation, sampling
 * from the model, the critical-token search) is what takes the time, and it grows with the rows.
 */
export const COMPARE_QUICK_LIMIT = { train: 128, test: 30 } as const;

/**
 * The comparison's budget under the user's overrides (tests pass a tiny one). Fine-tuning keeps the
 * fine-tuning defaults (budget.ts, in epochs), the same for every method; --quick still shrinks it.
 */
const compareBudget = (opts: PipelineOptions): PipelineOptions["budget"] => {
  if (opts.model && !opts.quick) return opts.budget;
  const base = opts.quick ? COMPARE_QUICK_BUDGET : COMPARE_BUDGET;
  return {
    ...base,
    ...(opts.model && opts.quick ? FINE_TUNE_QUICK.budget : {}),
    ...opts.budget,
    train: { ...base.train, ...opts.budget?.train } as Partial<Budget["train"]>,
  };
};

/** A builder that also remembers how nodes are wired, so the report can follow a model to its stages. */
class WiringBuilder extends PipelineBuilder {
  readonly wiring = new Map<string, Readonly<Record<string, string>>>();

  override source(name: string, path: string, opts: { companions?: ReadonlyArray<string> } = {}): NodeRef {
    this.wiring.set(name, {});
    return super.source(name, path, opts);
  }

  override add<C, I extends string, E>(
    name: string,
    step: Step<C, I, E>,
    config: NoInfer<C>,
    inputs: { readonly [K in I]?: NodeRef },
  ): NodeRef {
    const wired = Object.entries(inputs as Record<string, NodeRef | undefined>)
      .flatMap(([k, ref]) => (ref ? [[k, ref.node] as const] : []));
    this.wiring.set(name, Object.fromEntries(wired));
    return super.add(name, step, config, inputs);
  }

  /** `node` and the nodes it depends on whose names start with `prefix`. */
  ancestorsWithin(node: string, prefix: string): string[] {
    const seen = new Set<string>();
    const visit = (n: string) => {
      if (seen.has(n) || !n.startsWith(prefix)) return;
      seen.add(n);
      for (const from of Object.values(this.wiring.get(n) ?? {})) visit(from);
    };
    visit(node);
    return [...seen];
  }
}

export const build = (opts: PipelineOptions = {}, config: CompareConfig = {}) => {
  const fineTuning = opts.model !== undefined;
  // RFTT's warm-up search has the arithmetic expander only: its arms join the from-scratch comparison
  // (arithmetic prompts in both embedded sets), not the fine-tuning one (word problems).
  const methods = config.methods ??
    (fineTuning
      ? { ...withoutRftt(registry), base: baseRow }
      : opts.train
      ? withoutRftt(registry)
      : registry);
  const first = opts.seed ?? 0;
  const seedCount = fineTuning ? (opts.quick ? FINE_TUNE_QUICK.seeds : FINE_TUNE_SEEDS) : 3;
  const seeds = config.seeds ?? Array.from({ length: seedCount }, (_, i) => first + i);
  const datasets = config.datasets ??
    (opts.train
      ? [{ name: "data", train: opts.train, test: opts.test ?? opts.train, format: opts.format ?? "tags" }]
      : fineTuning
      ? (opts.quick ? FINE_TUNE_DATASETS.slice(0, FINE_TUNE_QUICK.datasets) : FINE_TUNE_DATASETS)
      : DEFAULT_DATASETS);
  // Its own name, so that the two regimes get their own run directories (runs/compare-finetune/).
  const p = new WiringBuilder(
    fineTuning ? "compare-finetune" : "compare",
    `${Object.keys(methods).join(", ")} over seeds ${seeds.join(", ")} on ${
      datasets.map((d) => d.name).join(", ")
    }`,
  );
  const runs: ReportConfig["runs"][number][] = [];
  const dataLayouts: ReportConfig["datasets"][number][] = [];
  let steps = "";
  const charts: Array<{ node: string; file: string; title: string }> = [];
  for (const d of datasets) {
    const data = prepareData(p, {
      ...opts,
      train: d.train,
      test: d.test,
      format: d.format,
      ...(d.maxLength !== undefined && opts.maxLength === undefined ? { maxLength: d.maxLength } : {}),
      ...(d.maxNewTokens !== undefined && opts.maxNewTokens === undefined
        ? { maxNewTokens: d.maxNewTokens }
        : {}),
      budget: compareBudget(opts),
      limit: opts.limit ??
        (opts.quick ? (fineTuning ? FINE_TUNE_QUICK.limit : COMPARE_QUICK_LIMIT) : undefined),
    }, `${d.name}/`);
    dataLayouts.push({ name: d.name, format: d.format, tokenizer: data.tokenizer.node });
    for (const seed of seeds) {
      for (const [method, add] of Object.entries(methods)) {
        const prefix = runPrefix(d.name, seed, method);
        const ctx = methodContext(p, data, seed, prefix);
        recordBudget(p, ctx);
        steps = `${ctx.budget.stageOneSteps} + ${ctx.budget.stageTwoSteps} steps`;
        const models = Object.entries(add(ctx)).map(([label, model]) => ({
          model: label,
          eval: evaluate(ctx, label, model).node,
          nodes: p.ancestorsWithin(modelNode(model).node, prefix).map((n) => n.slice(prefix.length)),
        }));
        const evals = new Set(models.map((m) => m.eval));
        const nodes = [...p.wiring.keys()].filter((n) => n.startsWith(prefix) && !evals.has(n)).map((n) => {
          const inputs = p.wiring.get(n)!;
          return {
            input: n,
            label: n.slice(prefix.length),
            ...(inputs.data ? { data: inputs.data } : {}),
            after: Object.values(inputs).filter((i) => i.startsWith(prefix)).map((i) =>
              i.slice(prefix.length)
            ),
          };
        });
        runs.push({ dataset: d.name, method, seed, nodes, models });
      }
    }
    // The RFTT arms' RL curves and test-time scaling (the search at inference), as means over seeds.
    if (RL_ARMS.every((arm) => arm in methods) && "rftt-sft" in methods) {
      const rl = Object.fromEntries(
        seeds.flatMap((seed) =>
          RL_ARMS.map((arm) => [`${runPrefix(d.name, seed, arm)}${arm}`, arm] as const)
        ),
      );
      addRlCharts(
        p,
        `${d.name}/rl-charts`,
        Object.fromEntries(Object.keys(rl).map((n) => [n, { node: n }])),
        { arms: rl, file: `${d.name}-rl_curves` },
      );
      const problems = opts.quick ? QUICK_VOTE_PROBLEMS : COMPARE_VOTE_PROBLEMS;
      const voteSet = p.add(`${d.name}/test-first${problems}`, takeRowsStep, {
        n: problems,
        file: "masked.jsonl",
      }, { from: data.testSet });
      const votes: Record<string, string> = {};
      for (const seed of seeds) {
        // The rftt method's own context: warmUp returns the nodes that method added.
        const ctx = methodContext(p, data, seed, runPrefix(d.name, seed, "rftt"));
        const warm = warmUp(ctx);
        for (
          const [label, model] of [["rftt-sft", warm.sft], ["rftt", { node: ctx.name("rftt") }]] as const
        ) {
          votes[searchVote(ctx, label, model, warm.tokenizer, voteSet).node] = label;
        }
      }
      addScalingChart(
        p,
        `${d.name}/scaling-chart`,
        Object.fromEntries(Object.keys(votes).map((n) => [n, { node: n }])),
        { models: votes, file: `${d.name}-scaling` },
      );
      charts.push(
        {
          node: `${d.name}/rl-charts`,
          file: `${d.name}-rl_curves.svg`,
          title: `${d.name}: RL per update, mean over seeds ${seeds.join(", ")}`,
        },
        {
          node: `${d.name}/scaling-chart`,
          file: `${d.name}-scaling.svg`,
          title: `${d.name}: test-time search, majority vote over the first N rollouts (first ${problems} ` +
            `test problems, mean over seeds ${seeds.join(", ")})`,
        },
      );
    }
  }
  addReport(p, "report", {
    title: `Method comparison: ${Object.keys(methods).join(", ")} on ${
      datasets.map((d) => d.name).join(", ")
    }` +
      ` (seeds ${seeds.join(", ")}; ${steps}${opts.quick ? ", quick budget" : ""})`,
    baseline: config.baseline ?? "sft",
    datasets: dataLayouts,
    runs,
    bootstrap: config.bootstrap ?? DEFAULT_BOOTSTRAP,
    maskExamples: config.maskExamples ?? 3,
    ...(charts.length > 0 ? { charts } : {}),
  });
  return p.build();
};
