/**
 * The command line: `pipeline` runs a pipeline (resuming what a failed or killed run left), `status`
 * shows what is cached, resumable or pending. Every failure a user can act on ends in one line naming
 * what to fix and a non-zero exit; finished steps stay cached.
 */
import { Args, Command, Options } from "@effect/cli";
import { Effect, Exit, Option } from "effect";
import { DataFormat } from "../data/formats.ts";
import { BackendName, useBackend } from "../backend/backend.ts";
import { InvalidConfig } from "../errors.ts";
import { tokenizerPathOf } from "./tokenizer_path.ts";
import { evalCommand } from "./eval.ts";
import { explainFailure } from "./explain.ts";
import { DenoCliLayer } from "./platform.ts";
import { runAndSummarise, showStatus } from "./run.ts";
import { loadPipeline } from "./load_pipeline.ts";
import { pipelines } from "../../pipelines/index.ts";
import { HELD_OUT_FRACTION, HELD_OUT_MAX, HELD_OUT_SEED } from "../../pipelines/data.ts";
import { makeExportCommand } from "./export.ts";
import { type BudgetFlags, budgetFromFlags, budgetOptions } from "./budget_flags.ts";
import { type DataFlags, dataFromFlags, dataOptions } from "./data_flags.ts";
import { generateCommand } from "./generate.ts";
import { scoreCommand } from "./score.ts";

const pipelineName = Args.text({ name: "pipeline" }).pipe(
  Args.withDescription(
    `a shipped pipeline (${Object.keys(pipelines).join(", ")}) or a path to a pipeline .ts file`,
  ),
  Args.withDefault("sftkey"),
);
const data = Options.file("data").pipe(
  Options.withDescription("training data (JSONL); replaces the pipeline's dataset"),
  Options.optional,
);
const test = Options.file("test").pipe(
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
  Options.withDescription(
    "tokenizer.json, or a directory with one or with vocab.json + merges.txt (default: the fixture's, " +
      "or the one in --model)",
  ),
  Options.optional,
);
const model = Options.directory("model").pipe(
  Options.withDescription(
    "Hugging Face checkpoint directory to start from (default: a tiny model from scratch)",
  ),
  Options.optional,
);
const runDir = Options.text("run-dir").pipe(
  Options.withDescription("where artifacts, locks and summary.json go (default: runs/<pipeline>)"),
  Options.optional,
);
const force = Options.text("force").pipe(
  Options.withDescription("recompute this step even if cached (repeatable)"),
  Options.repeated,
);
const backend = Options.choice("backend", BackendName.literals).pipe(
  Options.withDescription(
    "tfjs backend: auto (fastest available), tensorflow (tfjs-node-gpu), cpu-blas (cpu + OpenBLAS), cpu",
  ),
  Options.withDefault("auto" as const),
);
const seed = Options.integer("seed").pipe(Options.withDescription("training seed"), Options.withDefault(0));
const quick = Options.boolean("quick").pipe(Options.withDescription("a small budget for smoke tests"));

const selection = {
  pipelineName,
  data,
  test,
  evalOnTrain,
  format,
  tokenizer,
  model,
  seed,
  quick,
  runDir,
  ...dataOptions,
  ...budgetOptions,
};

type Selection = DataFlags & BudgetFlags & {
  pipelineName: string;
  data: Option.Option<string>;
  test: Option.Option<string>;
  evalOnTrain: boolean;
  format: Option.Option<DataFormat>;
  tokenizer: Option.Option<string>;
  model: Option.Option<string>;
  seed: number;
  quick: boolean;
  runDir: Option.Option<string>;
};

const resolve = (a: Selection) =>
  Effect.gen(function* () {
    const modelDir = Option.getOrUndefined(a.model);
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
    const budget = yield* budgetFromFlags(a);
    const pipeline = yield* loadPipeline(a.pipelineName, {
      budget,
      train: Option.getOrUndefined(a.data),
      test: Option.getOrUndefined(a.test),
      evalOnTrain: a.evalOnTrain || undefined,
      format: Option.getOrUndefined(a.format),
      ...dataFlags,
      tokenizer: tokenizerPath,
      model: modelDir,
      seed: a.seed,
      quick: a.quick,
    });
    const dir = Option.getOrElse(a.runDir, () => `runs/${pipeline.name}${a.quick ? "-quick" : ""}`);
    return { pipeline, dir };
  });

const runCommand = Command.make("run", { ...selection, force, backend }, (a) =>
  Effect.gen(function* () {
    const { pipeline, dir } = yield* resolve(a);
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
    const used = yield* useBackend(a.backend);
    yield* runAndSummarise(pipeline, { runDir: dir, force: a.force, backend: used });
  })).pipe(
    Command.withDescription("run a pipeline; finished steps are reused, interrupted training resumes"),
  );

const statusCommand = Command.make("status", selection, (a) =>
  Effect.gen(function* () {
    const { pipeline, dir } = yield* resolve(a);
    yield* showStatus(pipeline, dir);
  })).pipe(Command.withDescription("show which steps are cached, resumable or still to run"));

const exportCommand = makeExportCommand(selection, resolve);

const root = Command.make("sftkey").pipe(
  Command.withDescription("token-selective supervised fine-tuning (SFTKey and related methods)"),
  Command.withSubcommands([
    runCommand,
    statusCommand,
    generateCommand,
    scoreCommand,
    exportCommand,
    evalCommand,
  ]),
);

const cli = Command.run(root, { name: "sftkey", version: "0.1.0" });

if (import.meta.main) {
  const exit = await Effect.runPromiseExit(
    cli(["deno", "sftkey", ...Deno.args]).pipe(Effect.provide(DenoCliLayer)),
  );
  if (Exit.isFailure(exit)) {
    const message = explainFailure(exit.cause);
    if (message) console.error(message);
    Deno.exitCode = 1;
  }
}
