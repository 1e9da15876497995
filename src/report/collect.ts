/**
 * Reads what a comparison produced from the artifacts themselves: per evaluated model its metrics and
 * per-example correctness (evaluate's metrics.json and predictions.jsonl), per training stage its loss
 * log and trained tokens (train's train_log.jsonl and train_summary.json), per node its compute time
 * (the manifest's seconds), and a few training examples with the weights each stage trained on (the
 * masked.jsonl a stage read).
 *
 * The layout (which node belongs to which method, seed and dataset) comes from the pipeline that wired
 * the report; a node counts as a training stage when its artifact holds train_summary.json, so a method
 * with its own kinds of nodes (sampling, scoring) needs no change here.
 */
import { Effect } from "effect";
import type { FileUnreadable, TokenizerMismatch } from "../errors.ts";
import type { MaskedRecord } from "../data/records.ts";
import { readJsonl } from "../data/records.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { exists, readJson } from "../io/fs.ts";

/** One node a run (dataset x seed x method) added, as the pipeline wired it. */
export interface RunNode {
  /** Node name in the pipeline; also the report step's input name for it. */
  readonly input: string;
  /** The method's own name for it (the node name without the run's prefix). */
  readonly label: string;
  /** Input name of the node its `data` input reads (the masks it trains on), when it has one. */
  readonly data?: string;
  /** Labels of the run's nodes it reads directly. */
  readonly after: ReadonlyArray<string>;
}

export interface RunModel {
  /** The label the method gave the model ("sft", "sftkey-stage-two", ...). */
  readonly model: string;
  /** Input name of its evaluation. */
  readonly eval: string;
  /** Labels of the run's nodes that produced it (itself included), evaluation excluded. */
  readonly nodes: ReadonlyArray<string>;
}

export interface RunLayout {
  readonly dataset: string;
  readonly method: string;
  readonly seed: number;
  readonly nodes: ReadonlyArray<RunNode>;
  readonly models: ReadonlyArray<RunModel>;
}

export interface DatasetLayout {
  readonly name: string;
  readonly format: string;
  /** Input name of the dataset's tokenizer. */
  readonly tokenizer: string;
}

export interface StageResult {
  readonly label: string;
  readonly steps: number;
  /** Sum of the loss weights trained on (train_summary.json weightedTokens). */
  readonly tokens: number;
  /** Optimizer steps of the stages it continues from: where its curve starts on the method's axis. */
  readonly offset: number;
  readonly losses: ReadonlyArray<{ readonly step: number; readonly loss: number }>;
}

export interface ModelResult {
  readonly dataset: string;
  readonly method: string;
  readonly model: string;
  readonly seed: number;
  readonly accuracy: number;
  readonly format_rate: number;
  readonly key_loss: number;
  readonly n: number;
  /** Per test example, in test-set order: 1 if the extracted answer matched, else 0. */
  readonly correct: ReadonlyArray<number>;
  /** Test example sources (file:line), to check that pairs are the same examples. */
  readonly sources: ReadonlyArray<string>;
  /** Tokens trained by every stage that led to the model. */
  readonly tokens: number;
  /** Compute seconds of every node that led to the model, its evaluation included. */
  readonly seconds: number;
  readonly stages: ReadonlyArray<string>;
}

/** One training example as one stage trained on it. */
export interface MaskedExample {
  readonly stage: string;
  /** file:line of the example. */
  readonly source: string;
  /** The text of each token. */
  readonly tokens: ReadonlyArray<string>;
  readonly promptLength: number;
  /** The loss weight of each token. */
  readonly weights: ReadonlyArray<number>;
}

/**
 * The i-th training example of every stage of a method. Stages usually share the example's tokens; a
 * method that builds its own data (self-generated responses, an added instruction) shows its own.
 */
export type MaskExample = ReadonlyArray<MaskedExample>;

export interface MaskView {
  readonly dataset: string;
  readonly method: string;
  readonly seed: number;
  readonly examples: ReadonlyArray<MaskExample>;
}

export interface RunStages {
  readonly dataset: string;
  readonly method: string;
  readonly seed: number;
  readonly stages: ReadonlyArray<StageResult>;
}

export interface Collected {
  readonly models: ReadonlyArray<ModelResult>;
  readonly runs: ReadonlyArray<RunStages>;
  readonly masks: ReadonlyArray<MaskView>;
}

interface Prediction {
  readonly source: string;
  readonly correct: boolean;
}

interface Metrics {
  readonly accuracy: number;
  readonly format_rate: number;
  readonly key_loss: number;
  readonly n: number;
}

interface TrainSummary {
  readonly steps: number;
  readonly weightedTokens: number;
}

const manifestSeconds = (dir: string) =>
  readJson(`${dir}/manifest.json`).pipe(Effect.map((m) => Number((m as { seconds?: number }).seconds ?? 0)));

const isStage = (dir: string) => Effect.promise(() => exists(`${dir}/train_summary.json`));

/** Optimizer steps before `label` on its method's axis: the longest chain of stages it continues from. */
const offsets = (run: RunLayout, steps: ReadonlyMap<string, number>): Map<string, number> => {
  const byLabel = new Map(run.nodes.map((n) => [n.label, n]));
  const memo = new Map<string, number>();
  const end = (label: string): number => (offset(label) + (steps.get(label) ?? 0));
  const offset = (label: string): number => {
    if (!memo.has(label)) {
      memo.set(label, Math.max(0, ...(byLabel.get(label)?.after ?? []).map(end)));
    }
    return memo.get(label)!;
  };
  return new Map(run.nodes.map((n) => [n.label, offset(n.label)]));
};

/**
 * Reads every run's results. `dirOf` maps an input name to its artifact directory; `maskExamples` is
 * how many training examples the mask viewer shows (from the first seed of each dataset and method).
 */
export const collect = (
  datasets: ReadonlyArray<DatasetLayout>,
  runs: ReadonlyArray<RunLayout>,
  dirOf: (input: string) => string,
  maskExamples: number,
): Effect.Effect<Collected, FileUnreadable | TokenizerMismatch> =>
  Effect.gen(function* () {
    const models: ModelResult[] = [];
    const stagesOut: RunStages[] = [];
    const masks: MaskView[] = [];
    for (const run of runs) {
      const seconds = new Map<string, number>();
      const stages = new Map<string, { summary: TrainSummary; losses: StageResult["losses"] }>();
      for (const node of run.nodes) {
        const dir = dirOf(node.input);
        seconds.set(node.label, yield* manifestSeconds(dir));
        if (yield* isStage(dir)) {
          const summary = (yield* readJson(`${dir}/train_summary.json`)) as TrainSummary;
          const log = yield* readJsonl<{ step: number; loss: number }>(`${dir}/train_log.jsonl`);
          stages.set(node.label, { summary, losses: log.map((r) => ({ step: r.step, loss: r.loss })) });
        }
      }
      const at = offsets(run, new Map([...stages].map(([l, s]) => [l, s.summary.steps])));
      const stageResults: StageResult[] = [...stages].map(([label, s]) => ({
        label,
        steps: s.summary.steps,
        tokens: s.summary.weightedTokens,
        offset: at.get(label) ?? 0,
        losses: s.losses,
      }));
      stagesOut.push({ dataset: run.dataset, method: run.method, seed: run.seed, stages: stageResults });

      for (const m of run.models) {
        const dir = dirOf(m.eval);
        const metrics = (yield* readJson(`${dir}/metrics.json`)) as Metrics;
        const predictions = yield* readJsonl<Prediction>(`${dir}/predictions.jsonl`);
        const own = m.nodes.filter((l) => stages.has(l));
        models.push({
          dataset: run.dataset,
          method: run.method,
          model: m.model,
          seed: run.seed,
          accuracy: metrics.accuracy,
          format_rate: metrics.format_rate,
          key_loss: metrics.key_loss,
          n: metrics.n,
          correct: predictions.map((p) => (p.correct ? 1 : 0)),
          sources: predictions.map((p) => p.source),
          tokens: own.reduce((s, l) => s + stages.get(l)!.summary.weightedTokens, 0),
          seconds: m.nodes.reduce((s, l) => s + (seconds.get(l) ?? 0), 0) + (yield* manifestSeconds(dir)),
          stages: own,
        });
      }

      const shown = masks.some((v) => v.dataset === run.dataset && v.method === run.method);
      if (!shown && maskExamples > 0) {
        const dataset = datasets.find((d) => d.name === run.dataset)!;
        masks.push(yield* maskView(run, dataset, dirOf, maskExamples, [...stages.keys()]));
      }
    }
    return { models, runs: stagesOut, masks };
  });

const maskView = (
  run: RunLayout,
  dataset: DatasetLayout,
  dirOf: (input: string) => string,
  count: number,
  stageLabels: ReadonlyArray<string>,
) =>
  Effect.gen(function* () {
    const tok = yield* loadTokenizer(dirOf(dataset.tokenizer));
    const perStage: Array<{ stage: string; rows: MaskedRecord[] }> = [];
    for (const label of stageLabels) {
      const data = run.nodes.find((n) => n.label === label)?.data;
      if (data === undefined) continue;
      perStage.push({ stage: label, rows: yield* readJsonl<MaskedRecord>(`${dirOf(data)}/masked.jsonl`) });
    }
    // The same training example in every stage where it occurs (matched by file:line); a stage that trains
    // on other rows (its own generations, a selection) shows its i-th row instead, labelled by its source.
    const bySource = perStage.map(({ rows }) => new Map(rows.map((r) => [r.source, r])));
    const shown = Math.min(count, Math.max(0, ...perStage.map((s) => s.rows.length)));
    const examples: MaskExample[] = Array.from({ length: shown }, (_, i) => {
      const source = perStage.find((s) => s.rows[i] !== undefined)?.rows[i].source;
      return perStage.flatMap(({ stage, rows }, k) => {
        const row = (source !== undefined ? bySource[k].get(source) : undefined) ?? rows[i];
        return row === undefined ? [] : [{
          stage,
          source: row.source,
          // An id beyond the dataset's tokenizer is a token a method added (RFTT's functional tokens,
          // src/steps/add_tokens.ts): shown as its id, since the layout names one tokenizer per dataset.
          tokens: row.input_ids.map((id) => id < tok.vocabSize ? tok.tokenText(id) : `<id ${id}>`),
          promptLength: row.prompt_length,
          weights: row.weights,
        }];
      });
    });
    return { dataset: run.dataset, method: run.method, seed: run.seed, examples };
  });
