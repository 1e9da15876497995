/**
 * The command line: `pipeline` runs a pipeline (resuming what a failed or killed run left), `status`
 * shows what is cached, resumable or pending. Every failure a user can act on ends in one line naming
 * what to fix and a non-zero exit; finished steps stay cached.
 */
import { Args, Command, Options } from "@effect/cli";
import { Effect, Exit, Option } from "effect";
import type { LocatorSpec } from "../data/locate.ts";
import { DataFormat } from "../data/formats.ts";
import { BackendName, useBackend } from "../backend/backend.ts";
import { InvalidConfig } from "../errors.ts";
import { explainFailure } from "./explain.ts";
import { DenoCliLayer } from "./platform.ts";
import { runAndSummarise, showStatus } from "./run.ts";
import { loadPipeline } from "./load_pipeline.ts";
import { pipelines } from "../../pipelines/index.ts";
import { makeExportCommand } from "./export.ts";
import { type BudgetFlags, budgetFromFlags, budgetOptions } from "./budget_flags.ts";
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
  Options.withDescription("test data (JSONL) for evaluation; defaults to --data when that is given"),
  Options.optional,
);
const format = Options.choice("format", DataFormat.literals).pipe(
  Options.withDescription("row format of --data/--test: tags, gsm8k, reasoning, math, messages"),
  Options.optional,
);
const LOCATOR_KINDS = ["answer-tags", "gsm8k", "field", "boxed", "regex"] as const;
type LocatorKind = typeof LOCATOR_KINDS[number];

const locatorKind = Options.choice("locator", LOCATOR_KINDS).pipe(
  Options.withDescription(
    "how to find the key in gold responses and generations (default: the format's own: tags -> " +
      "answer-tags, gsm8k -> gsm8k, math -> boxed, reasoning/messages -> field)",
  ),
  Options.optional,
);
const locatorPattern = Options.text("locator-pattern").pipe(
  Options.withDescription(
    "with --locator regex: a JavaScript regular expression; its first group (or the whole match) is the key",
  ),
  Options.optional,
);
const maxLength = Options.integer("max-length").pipe(
  Options.withDescription("longest prompt + response in tokens (default 128); a key cut off fails the step"),
  Options.optional,
);
const maxNewTokens = Options.integer("max-new-tokens").pipe(
  Options.withDescription("tokens generated per prompt when evaluating and sampling (default 64)"),
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
  format,
  locatorKind,
  locatorPattern,
  maxLength,
  maxNewTokens,
  tokenizer,
  model,
  seed,
  quick,
  runDir,
  ...budgetOptions,
};

type Selection = BudgetFlags & {
  pipelineName: string;
  data: Option.Option<string>;
  test: Option.Option<string>;
  format: Option.Option<DataFormat>;
  locatorKind: Option.Option<LocatorKind>;
  locatorPattern: Option.Option<string>;
  maxLength: Option.Option<number>;
  maxNewTokens: Option.Option<number>;
  tokenizer: Option.Option<string>;
  model: Option.Option<string>;
  seed: number;
  quick: boolean;
  runDir: Option.Option<string>;
};

/** --locator and --locator-pattern as a LocatorSpec, validated like a pipeline's own locator config. */
const locatorFromFlags = (kind: Option.Option<LocatorKind>, pattern: Option.Option<string>) =>
  Effect.gen(function* () {
    if (Option.isNone(kind)) {
      if (Option.isSome(pattern)) {
        return yield* new InvalidConfig({ where: "--locator-pattern", reason: "needs --locator regex" });
      }
      return undefined;
    }
    if (kind.value !== "regex") {
      if (Option.isSome(pattern)) {
        return yield* new InvalidConfig({
          where: "--locator-pattern",
          reason: "only --locator regex takes a pattern",
        });
      }
      return { kind: kind.value } as LocatorSpec;
    }
    if (Option.isNone(pattern)) {
      return yield* new InvalidConfig({ where: "--locator regex", reason: "needs --locator-pattern REGEX" });
    }
    try {
      new RegExp(pattern.value);
    } catch (e) {
      return yield* new InvalidConfig({
        where: "--locator-pattern",
        reason: `not a valid JavaScript regular expression (${(e as Error).message})`,
      });
    }
    // No group given: the locator keys on the first group when the pattern has one, else the whole match.
    return { kind: "regex", pattern: pattern.value } as LocatorSpec;
  });

const resolve = (a: Selection) =>
  Effect.gen(function* () {
    const modelDir = Option.getOrUndefined(a.model);
    let tokenizerPath = Option.getOrUndefined(a.tokenizer);
    if (!tokenizerPath && modelDir) tokenizerPath = `${modelDir}/tokenizer.json`;
    if (Option.isSome(a.data) && Option.isNone(a.format)) {
      return yield* new InvalidConfig({
        where: "--format",
        reason: "--data needs --format (tags, gsm8k, ...)",
      });
    }
    const locator = yield* locatorFromFlags(a.locatorKind, a.locatorPattern);
    for (
      const [flag, value] of [["--max-length", a.maxLength], ["--max-new-tokens", a.maxNewTokens]] as const
    ) {
      if (Option.isSome(value) && value.value <= 0) {
        return yield* new InvalidConfig({
          where: flag,
          reason: `must be a positive integer, got ${value.value}`,
        });
      }
    }
    const budget = yield* budgetFromFlags(a);
    const pipeline = yield* loadPipeline(a.pipelineName, {
      budget,
      train: Option.getOrUndefined(a.data),
      test: Option.getOrUndefined(a.test),
      format: Option.getOrUndefined(a.format),
      locator,
      maxLength: Option.getOrUndefined(a.maxLength),
      maxNewTokens: Option.getOrUndefined(a.maxNewTokens),
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
      console.log("note: no --test given; evaluating on the training data");
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
  Command.withSubcommands([runCommand, statusCommand, generateCommand, scoreCommand, exportCommand]),
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
