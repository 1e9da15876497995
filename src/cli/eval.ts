/**
 * `eval`: generation-based evaluation of any checkpoint directory on a data file, with the extraction,
 * accuracy, format rate and key loss of the pipelines' evaluate step, and with `--samples k --temperature
 * T` pass@j and majority vote over k seeded samples per prompt; with `--rollouts N` (an RFTT model) RFTT's
 * test-time search: N functional-token MCTS rollouts per prompt and a majority vote over their answers.
 *
 *   deno task eval --model DIR [--adapter DIR] --data FILE --format F [--tokenizer T] [--locator L] [--max-length N]
 *                  [--max-new-tokens N] [--samples K --temperature T --seed S] [--rollouts N]
 *                  [--run-dir DIR]
 *
 * It runs as a pipeline (pipelines/eval.ts) in its run directory (default runs/eval): prepared data and
 * results are cached, and summary.json and the metrics table come out as for any pipeline. With
 * `--adapter` the LoRA adapter is merged into the model before it is evaluated (as `deno task merge`).
 */
import { Command, Options } from "@effect/cli";
import { Effect, Option } from "effect";
import { BackendName, useBackend } from "../backend/backend.ts";
import { DataFormat } from "../data/formats.ts";
import { InvalidConfig } from "../errors.ts";
import { build } from "../../pipelines/eval.ts";
import { type DataFlags, dataFromFlags, dataOptions } from "./data_flags.ts";
import { adapter, optionalFloat, optionalInt, requirePositive } from "./flags.ts";
import { adapterAgainstModel } from "./lora_flags.ts";
import { runAndSummarise } from "./run.ts";
import { tokenizerPathOf } from "./tokenizer_path.ts";

const options = {
  model: Options.directory("model").pipe(
    Options.withDescription("the Hugging Face checkpoint directory to evaluate"),
  ),
  adapter,
  data: Options.file("data").pipe(Options.withDescription("evaluation data (JSONL)")),
  format: Options.choice("format", DataFormat.literals).pipe(
    Options.withDescription("row format of --data: tags, gsm8k, reasoning, math, messages"),
  ),
  tokenizer: Options.text("tokenizer").pipe(
    Options.withDescription(
      "tokenizer.json or a directory with one or with vocab.json + merges.txt (default: the model's)",
    ),
    Options.optional,
  ),
  samples: optionalInt(
    "samples",
    "generations per prompt (default 1, greedy); above 1 reports pass@k and majority vote",
  ),
  temperature: optionalFloat(
    "temperature",
    "sampling temperature (default 0: greedy; --samples above 1 needs more)",
  ),
  rollouts: optionalInt(
    "rollouts",
    "RFTT models: functional-token tree search with N rollouts per prompt, the answer their majority vote (--temperature: the steps', default 0.3)",
  ),
  seed: Options.integer("seed").pipe(Options.withDescription("sampling seed"), Options.withDefault(0)),
  batchSize: optionalInt("batch-size", "sequences generated at once (default 50)"),
  runDir: Options.text("run-dir").pipe(
    Options.withDescription("where artifacts, locks and summary.json go (default: runs/eval)"),
    Options.optional,
  ),
  backend: Options.choice("backend", BackendName.literals).pipe(
    Options.withDescription("tfjs backend: auto, tensorflow, cpu-blas, cpu, webgpu"),
    Options.withDefault("auto" as const),
  ),
  ...dataOptions,
};

export const evalCommand = Command.make("eval", options, (a) =>
  Effect.gen(function* () {
    const data = yield* dataFromFlags(a as DataFlags);
    yield* requirePositive([
      ["--samples", a.samples],
      ["--temperature", Option.filter(a.temperature, (t) => t !== 0)],
      ["--rollouts", a.rollouts],
    ]);
    const rollouts = Option.getOrUndefined(a.rollouts);
    if (rollouts !== undefined && Option.isSome(a.samples)) {
      return yield* new InvalidConfig({
        where: "--rollouts",
        reason:
          "--rollouts (tree search) and --samples (independent samples) are two ways of voting; give one",
      });
    }
    const samples = Option.getOrUndefined(a.samples);
    const temperature = Option.getOrUndefined(a.temperature);
    if (samples !== undefined && samples > 1 && !(temperature !== undefined && temperature > 0)) {
      return yield* new InvalidConfig({
        where: "--samples",
        reason: `${samples} samples per prompt need --temperature above 0 (greedy samples are all the same)`,
      });
    }
    if (Option.isSome(a.adapter)) yield* adapterAgainstModel(a.adapter.value, a.model);
    const tokenizer = yield* tokenizerPathOf(Option.getOrUndefined(a.tokenizer), a.model);
    const pipeline = yield* Effect.try({
      try: () =>
        build({
          model: a.model,
          adapter: Option.getOrUndefined(a.adapter),
          tokenizer: tokenizer!,
          data: a.data,
          format: a.format,
          ...data,
          samples,
          temperature,
          rollouts,
          seed: samples !== undefined || temperature !== undefined || rollouts !== undefined
            ? a.seed
            : undefined,
          batchSize: Option.getOrUndefined(a.batchSize),
        }),
      catch: (e) => e instanceof InvalidConfig ? e : new InvalidConfig({ where: "eval", reason: String(e) }),
    });
    const sampling = rollouts !== undefined
      ? `test-time search: ${rollouts} functional-token MCTS rollout(s) per prompt, majority vote, seed ${a.seed}`
      : samples !== undefined || temperature !== undefined
      ? `${samples ?? 1} sample(s) per prompt at temperature ${temperature ?? 0}, seed ${a.seed}`
      : "greedy";
    const adapted = Option.match(a.adapter, { onNone: () => "", onSome: (d) => ` with adapter ${d}` });
    console.log(`evaluating ${a.model}${adapted} on ${a.data} (${a.format}, ${sampling})`);
    const used = yield* useBackend(a.backend);
    yield* runAndSummarise(pipeline, {
      runDir: Option.getOrElse(a.runDir, () => "runs/eval"),
      force: [],
      backend: used,
    });
  })).pipe(
    Command.withDescription("evaluate a checkpoint by generation: accuracy, format rate, key loss; pass@k"),
  );
