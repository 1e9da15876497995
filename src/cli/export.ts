/**
 * `deno task export [pipeline] --out DIR`: the training data of every stage of a pipeline, tokenised and
 * masked exactly as the pipeline trains on it, as JSONL that TRL's SFTTrainer accepts pre-tokenised
 * (`input_ids`, `completion_mask`; see steps/export_trl.ts), so the stages can run on another trainer.
 *
 * It runs only the data preparation the pipeline's training nodes depend on (locate, tokenise, masks; no
 * training), in the pipeline's own run directory so artifacts are shared with `run`, then writes one file
 * per training node (`<node>.jsonl`) and `stages.json`, which lists the stages in order with the node each
 * starts from and its training settings (stage two of SFTKey starts from stage one's result).
 */
import { type Args, Command, Options } from "@effect/cli";
import { Effect } from "effect";
import { InvalidConfig } from "../errors.ts";
import { type Pipeline, type PipelineNode, type StepNode, validate } from "../engine/pipeline.ts";
import { lockRunDir } from "../engine/lock.ts";
import { consoleReporter } from "../engine/progress.ts";
import { runPipeline } from "../engine/runner.ts";
import { type FileStat, parseStat, statOf, trusted } from "../engine/file_stats.ts";
import { copyFileAtomic, ensureDir, writeFileAtomic } from "../io/fs.ts";
import { exportTrlStep, TRL_FILE } from "../steps/export_trl.ts";
import { storeFor } from "./run.ts";

/** One exported stage: a training node and the masked data it trains on. */
export interface ExportStage {
  /** The training node. */
  readonly node: string;
  /** File name in the output directory. */
  readonly file: string;
  /** The mask node whose artifact is exported. */
  readonly maskNode: string;
  /** The export node added for it. */
  readonly exportNode: string;
}

const isTrain = (n: PipelineNode): n is StepNode => n.kind === "step" && n.step.name === "train";

/**
 * The part of `pipeline` that prepares the training data of its training nodes, plus an exportTrl node per
 * training node. Training and evaluation nodes are left out, so nothing is trained.
 */
export const exportPipeline = (pipeline: Pipeline): { pipeline: Pipeline; stages: ExportStage[] } => {
  const byName = new Map(pipeline.nodes.map((n) => [n.name, n]));
  const keep = new Set<string>();
  const addWithInputs = (name: string) => {
    if (keep.has(name)) return;
    keep.add(name);
    const n = byName.get(name);
    if (n?.kind === "step") { for (const from of Object.values(n.inputs)) addWithInputs(from); }
  };
  const stages: ExportStage[] = [];
  const exportNodes: StepNode[] = [];
  for (const n of pipeline.nodes.filter(isTrain)) {
    const maskNode = n.inputs.data;
    addWithInputs(maskNode);
    const exportNode = `export-${n.name}`;
    exportNodes.push({
      kind: "step",
      name: exportNode,
      step: exportTrlStep,
      config: {},
      inputs: { data: maskNode },
    });
    // Node names may carry a dataset prefix ("gsm8k/..."); a file name may not.
    stages.push({ node: n.name, file: `${n.name.replaceAll("/", "__")}.jsonl`, maskNode, exportNode });
  }
  const nodes = [...pipeline.nodes.filter((n) => keep.has(n.name)), ...exportNodes];
  return {
    pipeline: validate({ name: pipeline.name, description: `export of ${pipeline.name}`, nodes }),
    stages,
  };
};

/** What a stage starts from: another stage, a checkpoint directory, or a fresh model. */
const startOf = (pipeline: Pipeline, train: StepNode) => {
  const init = train.inputs.init;
  if (init === undefined) return { fresh: true };
  const n = pipeline.nodes.find((m) => m.name === init);
  if (n?.kind === "source") return { checkpoint: n.path };
  return { stage: init };
};

/**
 * Where an exported file was copied from, and its stat right after the copy (stages.json's `copy`): what
 * lets a rerun leave a file it wrote alone, the stat-record rule of ../engine/file_stats.ts.
 */
interface Copy {
  readonly from: string;
  readonly stat: FileStat;
  readonly recordedMs: number;
}

const statNow = (path: string): Promise<FileStat | undefined> =>
  Deno.stat(path).then(statOf, () => undefined);

/** The copies an earlier export recorded in stages.json, by file name; none when it is absent or damaged. */
const previousCopies = async (path: string): Promise<Map<string, Copy>> => {
  const out = new Map<string, Copy>();
  try {
    const stages = JSON.parse(await Deno.readTextFile(path));
    for (const s of Array.isArray(stages) ? stages : []) {
      const stat = parseStat(s?.copy?.stat);
      if (
        typeof s?.file === "string" && typeof s.copy.from === "string" && stat &&
        typeof s.copy.recordedMs === "number"
      ) {
        out.set(s.file, { from: s.copy.from, stat, recordedMs: s.copy.recordedMs });
      }
    }
  } catch {
    // No earlier export, or a file this version cannot read: everything is copied.
  }
  return out;
};

/** Runs the data preparation of `pipeline` and writes the TRL files and stages.json into `out`. */
export const runExport = (pipeline: Pipeline, opts: { runDir: string; out: string }) =>
  Effect.scoped(Effect.gen(function* () {
    const { pipeline: prep, stages } = exportPipeline(pipeline);
    if (stages.length === 0) {
      return yield* new InvalidConfig({
        where: "export",
        reason: `pipeline "${pipeline.name}" trains nothing`,
      });
    }
    yield* lockRunDir(opts.runDir);
    const reporter = consoleReporter();
    const result = yield* runPipeline(prep, { store: storeFor(opts.runDir), reporter, backend: "none" });
    yield* ensureDir(opts.out);
    const previous = yield* Effect.promise(() => previousCopies(`${opts.out}/stages.json`));
    const manifest = [];
    for (const s of stages) {
      const from = `${result.outputs.get(s.exportNode)!}/${TRL_FILE}`;
      const to = `${opts.out}/${s.file}`;
      // A file this export wrote from the same artifact, untouched since (its stat as recorded then), is
      // not copied again: a rerun of a large export would otherwise rewrite gigabytes it already holds.
      const before = previous.get(s.file);
      const now = yield* Effect.promise(() => statNow(to));
      const unchanged = before !== undefined && before.from === from && now !== undefined &&
        trusted(before.stat, now, before.recordedMs);
      // Copied by the kernel, not read into memory: the file may be larger than one read may be.
      let copy: Copy;
      if (unchanged) copy = before;
      else {
        yield* copyFileAtomic(from, to);
        // The copy's mtime is set a second back, so that the record made now vouches for it at once
        // (a record younger than RACY_MS after the mtime is not trusted); any later write moves it on.
        const recordedMs = Date.now();
        const stat = yield* Effect.promise(async () => {
          await Deno.utime(to, new Date(recordedMs), new Date(recordedMs - 1000));
          return await statNow(to);
        });
        copy = { from, stat: stat!, recordedMs };
      }
      const train = pipeline.nodes.find((n) => n.name === s.node) as StepNode;
      const mask = pipeline.nodes.find((n) => n.name === s.maskNode) as StepNode;
      manifest.push({
        stage: s.node,
        file: s.file,
        mask: mask.config,
        start: startOf(pipeline, train),
        train: train.config,
        copy,
      });
      reporter.log(`${s.node}: ${opts.out}/${s.file}${unchanged ? " (unchanged)" : ""}`);
    }
    yield* writeFileAtomic(`${opts.out}/stages.json`, JSON.stringify(manifest, null, 2) + "\n");
    reporter.log(`stages, in order, with what each starts from: ${opts.out}/stages.json`);
  }));

// A text option: the directory is created if missing, and an existing one is written into.
const out = Options.text("out").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("directory for <stage>.jsonl (TRL: input_ids, completion_mask) and stages.json"),
);

/**
 * The `export` command, over the same pipeline and data options as `run` (passed in by main.ts, which owns
 * them, with the function that turns them into a pipeline and its run directory).
 */
export const makeExportCommand = <
  // deno-lint-ignore no-explicit-any
  C extends Record<string, Options.Options<any> | Args.Args<any>>,
  E,
  R,
>(
  selection: C,
  resolve: (a: Command.Command.ParseConfig<C>) => Effect.Effect<{ pipeline: Pipeline; dir: string }, E, R>,
) =>
  Command.make("export", { ...selection, out }, (a) =>
    Effect.gen(function* () {
      const { pipeline, dir } = yield* resolve(a as Command.Command.ParseConfig<C>);
      // TypeScript cannot see through the generic spread that `out` is there.
      yield* runExport(pipeline, { runDir: dir, out: (a as unknown as { out: string }).out });
    })).pipe(
      Command.withDescription(
        "write each training stage's masked data as TRL SFTTrainer JSONL (input_ids, completion_mask)",
      ),
    );
