/**
 * The command line: `pipeline` runs a pipeline (resuming what a failed or killed run left), `status`
 * shows what is cached, resumable or pending. Every failure a user can act on ends in one line naming
 * what to fix and a non-zero exit; finished steps stay cached.
 */
import { Args, Command, Options } from "@effect/cli";
import { Effect, Exit, Option } from "effect";
import { DataFormat } from "../data/formats.ts";
import { useBackend } from "../backend/backend.ts";
import { FileUnreadable, InvalidConfig } from "../errors.ts";
import { loadCheckpointConfig } from "../model/checkpoint.ts";
import { backend } from "./flags.ts";
import { helpText, wantsHelp } from "./help.ts";
import { tokenizerPathOf } from "./tokenizer_path.ts";
import { evalCommand } from "./eval.ts";
import { explainFailure } from "./explain.ts";
import { DenoCliLayer } from "./platform.ts";
import { runAndSummarise, showStatus } from "./run.ts";
import { loadPipeline } from "./load_pipeline.ts";
import { DEFAULT_PIPELINE, pipelines } from "../../pipelines/index.ts";
import {
  HELD_OUT_FRACTION,
  HELD_OUT_MAX,
  HELD_OUT_SEED,
  type PipelineOptions,
} from "../../pipelines/data.ts";
import { makeExportCommand } from "./export.ts";
import { type BudgetFlags, budgetFromFlags, budgetOptions } from "./budget_flags.ts";
import { type DataFlags, dataFromFlags, dataOptions } from "./data_flags.ts";
import { generateCommand } from "./generate.ts";
import { scoreCommand } from "./score.ts";
import { mergeCommand } from "./merge.ts";
import {
  adapterAgainstModel,
  type LoraFlags,
  loraFromFlags,
  loraOptions,
  loraStageTwoFromFlags,
} from "./lora_flags.ts";

const pipelineName = Args.text({ name: "pipeline" }).pipe(
  Args.withDescription(
    `a shipped pipeline (${
      Object.keys(pipelines).join(", ")
    }) or a path to a pipeline .ts file (default: ${DEFAULT_PIPELINE})`,
  ),
  Args.withDefault(DEFAULT_PIPELINE),
);
const data = Options.file("data").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription("training data (JSONL); replaces the pipeline's dataset"),
  Options.optional,
);
const test = Options.file("test").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription(
    "test data (JSONL) for evaluation; without it, 10% of --data (at most 500 rows, seed 0) is held out of " +
      "training and evaluated on",
  ),
  Options.optional,
);
const evalOnTrain = Options.boolean("eval-on-train").pipe(
  Options.withDescription("without --test: evaluate on the training rows of --data instead of held-out rows"),
);
const format = Options.choice("format", DataFormat.literals).pipe(
  Options.withDescription("row format of --data/--test: tags, gsm8k, reasoning, math, messages"),
  Options.optional,
);
// Text, not Options.file: a directory with vocab.json + merges.txt is a tokenizer too (loadTokenizer checks).
const tokenizer = Options.text("tokenizer").pipe(
  Options.withPseudoName("FILE|DIR"),
  Options.withDescription(
    "tokenizer.json, or a directory with one or with vocab.json + merges.txt (default: the fixture's, " +
      "or the one in --model)",
  ),
  Options.optional,
);
const model = Options.directory("model").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription(
    "Hugging Face checkpoint directory to start from (default: a tiny model from scratch)",
  ),
  Options.optional,
);
// Text, not Options.directory: a missing one is then one typed line naming adapter_config.json.
const startAdapter = Options.text("adapter").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription(
    "a LoRA adapter (PEFT layout) on --model to start training from: continued with --lora (its r, alpha " +
      "and targets), merged into --model otherwise",
  ),
  Options.optional,
);
const runDir = Options.text("run-dir").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("where artifacts, locks and summary.json go (default: runs/<pipeline>)"),
  Options.optional,
);
// Optional around repeated: without it the usage shows "--force STEP..." as if it were required.
const force = Options.text("force").pipe(
  Options.withPseudoName("STEP"),
  Options.withDescription("recompute this node even if cached (repeatable); a name `status` lists"),
  Options.repeated,
  Options.optional,
  Options.map(Option.getOrElse((): ReadonlyArray<string> => [])),
);
const seed = Options.integer("seed").pipe(
  Options.withPseudoName("N"),
  Options.withDescription("training seed (default 0)"),
  Options.withDefault(0),
);
const quick = Options.boolean("quick").pipe(Options.withDescription("a small budget for smoke tests"));

const jobs = Options.integer("jobs").pipe(
  Options.withPseudoName("N"),
  Options.withDescription(
    "steps computed at once, each on its own worker thread and core, as soon as their inputs are done (default 1; cpu backends)",
  ),
  Options.withDefault(1),
  Options.filterMap((n) => (n >= 1 ? Option.some(n) : Option.none()), "--jobs must be at least 1"),
);
/** The workers' copies of OpenBLAS that the launcher made (comma-separated paths), if it did. */
const blasCopiesFromLauncher = (): ReadonlyArray<string> | undefined =>
  Deno.env.get("SFTKEY_BLAS_COPIES")?.split(",").filter((p) => p !== "");
/** The backends whose work a worker thread can do beside the others' (each computes on its own core). */
const PARALLEL_BACKENDS: ReadonlyArray<string> = ["cpu-blas", "cpu"];

const selection = {
  pipelineName,
  data,
  test,
  evalOnTrain,
  format,
  tokenizer,
  model,
  startAdapter,
  seed,
  quick,
  runDir,
  ...dataOptions,
  ...budgetOptions,
  ...loraOptions,
};

type Selection = DataFlags & BudgetFlags & LoraFlags & {
  pipelineName: string;
  data: Option.Option<string>;
  test: Option.Option<string>;
  evalOnTrain: boolean;
  format: Option.Option<DataFormat>;
  tokenizer: Option.Option<string>;
  model: Option.Option<string>;
  startAdapter: Option.Option<string>;
  seed: number;
  quick: boolean;
  runDir: Option.Option<string>;
};

const resolve = (a: Selection) =>
  Effect.gen(function* () {
    const modelDir = Option.getOrUndefined(a.model);
    // A --model directory is checked before the pipeline is built: a missing one or a broken config.json
    // is reported now, naming the file, rather than when the training step reaches it.
    if (modelDir) {
      const isDir = yield* Effect.sync(() => {
        try {
          return Deno.statSync(modelDir).isDirectory;
        } catch {
          return false;
        }
      });
      if (!isDir) return yield* new FileUnreadable({ path: modelDir, reason: "no such directory (--model)" });
      yield* loadCheckpointConfig(modelDir);
    }
    // An --adapter is checked against --model now too, naming its file; with --lora its settings are the
    // defaults of the --lora flags.
    const adapterDir = Option.getOrUndefined(a.startAdapter);
    const startAdapter = adapterDir === undefined
      ? undefined
      : yield* adapterAgainstModel(adapterDir, modelDir);
    const tokenizerPath = yield* tokenizerPathOf(Option.getOrUndefined(a.tokenizer), modelDir);
    if (Option.isSome(a.data) && Option.isNone(a.format)) {
      return yield* new InvalidConfig({
        where: "--format",
        reason: "--data needs --format (tags, gsm8k, ...)",
      });
    }
    if (a.evalOnTrain && (Option.isNone(a.data) || Option.isSome(a.test))) {
      return yield* new InvalidConfig({
        where: "--eval-on-train",
        reason: "applies only to --data without --test",
      });
    }
    const dataFlags = yield* dataFromFlags(a);
    const flagBudget = yield* budgetFromFlags(a);
    const lora = yield* loraFromFlags(a, startAdapter);
    const loraStageTwo = yield* loraStageTwoFromFlags(a);
    // --lora reaches every training node through the budget's train settings.
    const budget = lora ? { ...flagBudget, train: { ...flagBudget?.train, lora } } : flagBudget;
    const options: PipelineOptions = {
      budget,
      train: Option.getOrUndefined(a.data),
      test: Option.getOrUndefined(a.test),
      evalOnTrain: a.evalOnTrain || undefined,
      format: Option.getOrUndefined(a.format),
      ...dataFlags,
      tokenizer: tokenizerPath,
      model: modelDir,
      adapter: adapterDir,
      loraStageTwo,
      seed: a.seed,
      quick: a.quick,
    };
    const pipeline = yield* loadPipeline(a.pipelineName, options);
    const dir = Option.getOrElse(a.runDir, () => `runs/${pipeline.name}${a.quick ? "-quick" : ""}`);
    // How it was built, for worker threads (--jobs) to build the same pipeline.
    return { pipeline, dir, built: { pipeline: a.pipelineName, options } };
  });

const runCommand = Command.make(
  "run",
  { ...selection, force, backend, jobs },
  (a) =>
    Effect.gen(function* () {
      const { pipeline, dir, built } = yield* resolve(a);
      if (Option.isSome(a.data) && Option.isNone(a.test)) {
        console.log(
          a.evalOnTrain
            ? "note: --eval-on-train: evaluating on the training rows (this measures fit, not accuracy)"
            : `note: no --test given; evaluating on ${
              100 * HELD_OUT_FRACTION
            }% of --data (at most ${HELD_OUT_MAX} ` +
              `rows, seed ${HELD_OUT_SEED}) held out of training`,
        );
      }
      const names = pipeline.nodes.map((n) => n.name);
      const unknown = a.force.filter((f) => !names.includes(f));
      if (unknown.length > 0) {
        return yield* new InvalidConfig({
          where: "--force",
          reason: `no node named ${unknown.map((u) => `"${u}"`).join(", ")} in pipeline ${pipeline.name}; ` +
            `its nodes are ${names.join(", ")}`,
        });
      }
      const used = yield* useBackend(a.backend);
      if (a.jobs > 1 && !PARALLEL_BACKENDS.includes(used)) {
        return yield* new InvalidConfig({
          where: "--jobs",
          reason:
            `steps run in parallel on the cpu backends (${PARALLEL_BACKENDS.join(", ")}), one core each; ` +
            `backend ${used} computes on one device: leave --jobs at 1`,
        });
      }
      yield* runAndSummarise(pipeline, {
        runDir: dir,
        force: a.force,
        backend: used,
        // The launcher's copies of OpenBLAS for the workers (src/cli/launch.ts), when it made them.
        ...(a.jobs > 1 ? { jobs: { count: a.jobs, ...built, blasCopies: blasCopiesFromLauncher() } } : {}),
      });
    }),
).pipe(
  Command.withDescription("run a pipeline; finished steps are reused, interrupted training resumes"),
);

const verify = Options.boolean("verify").pipe(
  Options.withDescription(
    "hash every source and artifact file in full instead of trusting unchanged size, times and inode",
  ),
);

const statusCommand = Command.make("status", { ...selection, verify }, (a) =>
  Effect.gen(function* () {
    const { pipeline, dir } = yield* resolve(a);
    yield* showStatus(pipeline, dir, a.verify);
  })).pipe(Command.withDescription("show which steps are cached, resumable or still to run"));

const exportCommand = makeExportCommand(selection, resolve);

/** The help of each command by the word the launcher passes first, under the task a user types. */
export const helps: Record<string, () => string> = {
  run: () => helpText(runCommand, "deno task pipeline"),
  status: () => helpText(statusCommand, "deno task status"),
  export: () => helpText(exportCommand, "deno task export"),
  generate: () => helpText(generateCommand, "deno task generate"),
  score: () => helpText(scoreCommand, "deno task score"),
  merge: () => helpText(mergeCommand, "deno task merge"),
};

const root = Command.make("sftkey").pipe(
  Command.withDescription("token-selective supervised fine-tuning (SFTKey and related methods)"),
  Command.withSubcommands([
    runCommand,
    statusCommand,
    generateCommand,
    scoreCommand,
    exportCommand,
    evalCommand,
    mergeCommand,
  ]),
);

const cli = Command.run(root, { name: "sftkey", version: "0.1.0" });

if (import.meta.main) {
  const [word = "", ...rest] = Deno.args;
  if (Object.hasOwn(helps, word) && wantsHelp(rest)) {
    console.log(helps[word]());
    Deno.exit(0);
  }
  const exit = await Effect.runPromiseExit(
    cli(["deno", "sftkey", ...Deno.args]).pipe(Effect.provide(DenoCliLayer)),
  );
  if (Exit.isFailure(exit)) {
    const message = explainFailure(exit.cause);
    if (message) console.error(message);
    Deno.exitCode = 1;
  }
}
