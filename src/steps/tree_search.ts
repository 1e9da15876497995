/**
 * Step `treeSearch`: RFTT's warm-up data. For each problem, a Monte-Carlo tree search over functional-token
 * steps (../train/rftt_search.ts) with an expander; the SFT data are the tree's correct paths and its
 * branch merges (a wrong step, `<verify>`, `<refine>`, the correct continuation).
 *
 * Expanders: "arith", the programmatic expander for the synthetic arithmetic task (prompts "What is
 * 9 - 3 + 2?"; exact, no model). The model expander is for a later version of this step.
 *
 * Input `data`: a data file in `format`, or a step's located examples (a directory with located.jsonl, as
 * locateKey and holdOut write: then only its rows are searched, e.g. a training split).
 *
 * Output: located.jsonl, the locateKey step's records (so tokenise takes this step's output as its
 * examples): the trace is the response, the key is the content of its `<output>` segment and the answer part
 * starts at that segment; each record also says its `kind` ("correct" or "merge"). And report.json. Each problem's tree uses its own RNG stream (seed + problem index), so the data do not
 * depend on how many problems come before it were skipped.
 */
import { Effect, Schema } from "effect";
import { EmptyDataset, InvalidRow, type ToolkitError } from "../errors.ts";
import { DataFormat, readExamples } from "../data/formats.ts";
import { type LocatedRecord, readJsonl, writeJsonl } from "../data/records.ts";
import { closeTag, openTag } from "../data/functional_tokens.ts";
import { arithExpander, parseArithPrompt } from "../train/rftt_arith.ts";
import { search, sftTraces } from "../train/rftt_search.ts";
import { Rng } from "../util/rng.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";

const PositiveInt = Schema.Int.pipe(Schema.positive());

/** Decoder of the step's config; the fields are documented on the interface `TreeSearchConfig`. */
export const TreeSearchConfig: Schema.Schema<TreeSearchConfig> = Schema.Struct({
  format: DataFormat,
  expander: Schema.Literal("arith"),
  /** Rollouts per problem. */
  rollouts: PositiveInt,
  /** Most steps in a trace. */
  maxDepth: PositiveInt,
  /** UCT's exploration weight (2 in RFTT). */
  exploration: Schema.Number.pipe(Schema.nonNegative()),
  /** "arith": the probability that a computing step also gets a wrong sibling. */
  wrongRate: Schema.Number.pipe(Schema.between(0, 1)),
  /** Most correct traces and most branch merges kept per problem (the first found). */
  correctPerProblem: Schema.Int.pipe(Schema.nonNegative()),
  mergesPerProblem: Schema.Int.pipe(Schema.nonNegative()),
  seed: Schema.Int,
});
/** The `treeSearch` step's config as plain data, spelled out for the API docs. */
export interface TreeSearchConfig {
  /** The data format of the problems. */
  readonly format: DataFormat;
  /** The expander: "arith", the programmatic one for the synthetic arithmetic task. */
  readonly expander: "arith";
  /** Rollouts per problem. */
  readonly rollouts: number;
  /** Most steps in a trace. */
  readonly maxDepth: number;
  /** UCT's exploration weight (2 in RFTT). */
  readonly exploration: number;
  /** "arith": the probability that a computing step also gets a wrong sibling. */
  readonly wrongRate: number;
  /** Most correct traces kept per problem (the first found). */
  readonly correctPerProblem: number;
  /** Most branch merges kept per problem (the first found). */
  readonly mergesPerProblem: number;
  /** Seed of the search (each problem uses seed + its index). */
  readonly seed: number;
}

/** Defaults of every field but `format`. */
export const TREE_SEARCH_DEFAULTS: Omit<TreeSearchConfig, "format"> = {
  expander: "arith",
  rollouts: 16,
  maxDepth: 8,
  exploration: 2,
  wrongRate: 0.3,
  correctPerProblem: 2,
  mergesPerProblem: 1,
  seed: 0,
};

export interface TraceRecord extends LocatedRecord {
  readonly kind: "correct" | "merge";
}

/** The located record of a trace whose last segment is `<output>`. */
export const traceRecord = (
  source: string,
  prompt: string,
  trace: string,
  kind: TraceRecord["kind"],
): TraceRecord => {
  const open = `${openTag("output")}\n`;
  const answerStart = trace.lastIndexOf(open);
  const start = answerStart + open.length;
  const end = trace.lastIndexOf(`\n${closeTag("output")}`);
  if (answerStart < 0 || end < start) {
    throw new RangeError(`a trace without an <output> segment: ${trace.slice(0, 60)}`);
  }
  return {
    source,
    prompt,
    response: trace,
    key: { start, end },
    answer: trace.slice(start, end),
    answer_start: answerStart,
    kind,
  };
};

/** The `treeSearch` step: RFTT warm-up data from a tree search per problem. */
export const treeSearchStep: Step<TreeSearchConfig, "data", ToolkitError> = defineStep({
  name: "treeSearch",
  version: 1,
  description: "RFTT warm-up data: MCTS over functional-token steps; correct paths and branch merges",
  config: TreeSearchConfig,
  inputs: ["data"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      // A data file in `format`, or a step's located examples (locateKey, holdOut: located.jsonl).
      const located = `${inputs.data}/located.jsonl`;
      const examples: ReadonlyArray<{ readonly source: string; readonly prompt: string }> =
        (yield* Effect.promise(() => Deno.stat(inputs.data!).then((i) => i.isDirectory, () => false)))
          ? yield* readJsonl<LocatedRecord>(located)
          : yield* readExamples(inputs.data!, config.format);
      if (examples.length === 0) {
        return yield* new EmptyDataset({ what: inputs.data!, reason: "the file has no rows" });
      }
      const out: TraceRecord[] = [];
      let solved = 0, correct = 0, merges = 0, rollouts = 0, rewarded = 0;
      for (const [i, ex] of examples.entries()) {
        const problem = parseArithPrompt(ex.prompt);
        if (problem === undefined) {
          const [file, line] = [
            ex.source.slice(0, ex.source.lastIndexOf(":")),
            Number(ex.source.slice(ex.source.lastIndexOf(":") + 1)),
          ];
          return yield* new InvalidRow({
            file,
            line,
            field: "prompt",
            reason: `the "arith" expander needs a prompt like "What is 9 - 3 + 2?", got ${
              JSON.stringify(ex.prompt.slice(0, 60))
            }`,
          });
        }
        const tree = search(
          arithExpander(problem, { wrongRate: config.wrongRate }),
          { rollouts: config.rollouts, maxDepth: config.maxDepth, exploration: config.exploration },
          Rng.seeded(config.seed * 1_000_003 + i),
        );
        rollouts += tree.rollouts.length;
        rewarded += tree.rollouts.filter((r) => r.value === 1).length;
        const traces = sftTraces(tree);
        const good = traces.filter((t) => t.kind === "correct").slice(0, config.correctPerProblem);
        const merged = traces.filter((t) => t.kind === "merge").slice(0, config.mergesPerProblem);
        if (traces.some((t) => t.kind === "correct")) solved++;
        correct += good.length;
        merges += merged.length;
        for (const t of [...good, ...merged]) out.push(traceRecord(ex.source, ex.prompt, t.text, t.kind));
      }
      if (out.length === 0) {
        return yield* new EmptyDataset({
          what: inputs.data!,
          reason: "the search found no correct trace for any problem",
        });
      }
      yield* writeJsonl(`${ctx.dir}/located.jsonl`, out);
      const report = {
        problems: examples.length,
        solved,
        traces: out.length,
        correct,
        merges,
        rollouts,
        rewardedRollouts: rewarded,
      };
      // No wall time here: report.json is content, and its digest keys what follows (the manifest has the
      // seconds; engine/store.ts).
      yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2) + "\n");
      ctx.reporter.log(
        `[${ctx.node}] ${solved}/${examples.length} problems solved; ${correct} correct traces, ${merges} branch merges`,
      );
    }),
});
