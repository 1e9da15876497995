/**
 * The bad-input table: one row per way a user's input can be wrong, each run through the real code
 * (the runner and its steps in-process for most, the CLI's pipeline loader in-process for pipeline files
 * that are missing or fail in build(), the CLI as a subprocess for other pipeline files, command-line
 * mistakes and the checks that finished steps stay cached). A row names the tagged error it must produce
 * and what its one-line message must mention (file:line, field, step). tests/bad_input.test.ts runs every
 * row; tools/bad_input_table.ts runs them and writes docs/bad-input.md.
 */
import { Cause, Effect, Exit, Option } from "effect";
import { describeError, type ToolkitError } from "../src/errors.ts";
import { type Pipeline, PipelineBuilder, type PipelineNode, validate } from "../src/engine/pipeline.ts";
import { runPipeline, type StepFailed } from "../src/engine/runner.ts";
import { ArtifactStore } from "../src/engine/store.ts";
import { silentReporter } from "../src/engine/progress.ts";
import type { AnyStep } from "../src/engine/step.ts";
import { setChunkWriter } from "../src/io/fs.ts";
import { isTempFile, listFiles } from "../src/io/fs.ts";
import { useBackend } from "../src/backend/backend.ts";
import { locateKeyStep } from "../src/steps/locate_key.ts";
import { tokeniseStep } from "../src/steps/tokenise.ts";
import { buildMasksStep } from "../src/steps/build_masks.ts";
import { trainStep } from "../src/steps/train.ts";
import { addTokensStep } from "../src/steps/add_tokens.ts";
import { TREE_SEARCH_DEFAULTS, treeSearchStep } from "../src/steps/tree_search.ts";
import { tokeniseCorpusStep } from "../src/steps/tokenise_corpus.ts";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { parseSafetensors, serializeSafetensors } from "../src/model/safetensors.ts";
import { Rng } from "../src/util/rng.ts";

export const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const fixtureTokenizer = `${root}/fixtures/arith/tokenizer.json`;

export interface Observed {
  /** The error's tag (for CLI rows: inferred from the message's wording, which is one per tag). */
  readonly tag: string;
  /** The one line a user sees (for CLI rows: stderr). */
  readonly message: string;
}

export interface BadInputCase {
  readonly name: string;
  /** The input, in words, for the table. */
  readonly input: string;
  readonly expected: string;
  /** Substrings the message must contain. */
  readonly mentions: ReadonlyArray<string>;
  /** How it is run: "step" (the runner in-process), "loader" (a loader function), "cli". */
  readonly via: "step" | "loader" | "cli";
  /** Runs the case in a fresh temporary directory; throws if a side condition fails (cache kept, ...). */
  readonly run: (dir: string) => Promise<Observed>;
}

// ---------------------------------------------------------------------------------------------------------
// Running through the engine in-process

const step = (name: string, s: AnyStep, config: unknown, inputs: Record<string, string>): PipelineNode => ({
  kind: "step",
  name,
  step: s,
  config,
  inputs,
});

interface Prep {
  readonly data: string;
  readonly format?: string;
  readonly tokenizer?: string;
  readonly keys?: Record<string, unknown>;
  readonly tokens?: Record<string, unknown>;
  readonly mask?: unknown;
  readonly train?: Record<string, unknown>;
  readonly init?: string;
}

export const tinyConfig = (vocabSize: number): ModelConfig => ({
  architecture: "llama",
  vocabSize,
  hiddenSize: 16,
  numLayers: 1,
  numHeads: 2,
  numKvHeads: 1,
  intermediateSize: 32,
  maxPositions: 128,
  ropeTheta: 10000,
  rmsNormEps: 1e-5,
  tieEmbeddings: false,
});

const trainConfig = (extra: Record<string, unknown> = {}, withModel = true) => ({
  steps: 2,
  batchSize: 4,
  microBatchSize: 4,
  lr: 1e-3,
  warmupSteps: 0,
  minLrRatio: 0.1,
  weightDecay: 0,
  clipNorm: 1,
  checkpointEvery: 1,
  seed: 0,
  ...(withModel ? { model: tinyConfig(323) } : {}),
  ...extra,
});

/**
 * The data preparation (locateKey, tokenise, buildMasks) and, when `train` is given, a training stage, as
 * raw nodes: configs are not checked by a builder, so the runner's own validation is what is tested.
 */
const prepPipeline = (o: Prep): Pipeline => {
  const nodes: PipelineNode[] = [
    { kind: "source", name: "data", path: o.data },
    { kind: "source", name: "tokenizer", path: o.tokenizer ?? fixtureTokenizer },
    step("keys", locateKeyStep, { format: o.format ?? "tags", onMissingKey: "fail", ...o.keys }, {
      data: "data",
    }),
    step("tokens", tokeniseStep, {
      template: "{prompt}\n",
      maxLength: 128,
      onTruncatedKey: "fail",
      ...o.tokens,
    }, { examples: "keys", tokenizer: "tokenizer" }),
    step("masks", buildMasksStep, { mask: o.mask ?? { kind: "response" } }, { tokens: "tokens" }),
  ];
  if (o.init) nodes.push({ kind: "source", name: "init", path: o.init });
  if (o.train) {
    nodes.push(step("stage", trainStep, o.train, {
      data: "masks",
      tokenizer: "tokenizer",
      ...(o.init ? { init: "init" } : {}),
    }));
  }
  return validate({ name: "bad-input", description: "", nodes });
};

/** The addTokens step on a checkpoint directory with the fixture tokenizer. */
const growPipeline = (model: string, tokens: string[]): Pipeline =>
  validate({
    name: "bad-input",
    description: "",
    nodes: [
      { kind: "source", name: "model", path: model },
      { kind: "source", name: "tokenizer", path: fixtureTokenizer },
      step("grow", addTokensStep, { tokens }, { model: "model", tokenizer: "tokenizer" }),
    ],
  });

let backend: string | undefined;

/** Runs a pipeline in `dir`; returns the node statuses, or the error as the CLI would print it. */
export const runInProcess = async (dir: string, pipeline: Pipeline) => {
  backend ??= await Effect.runPromise(useBackend("cpu"));
  const exit = await Effect.runPromiseExit(runPipeline(pipeline, {
    store: new ArtifactStore(`${dir}/artifacts`),
    reporter: silentReporter(),
    backend,
  }));
  if (Exit.isSuccess(exit)) return { statuses: exit.value.records.map((r) => `${r.name}:${r.status}`) };
  const failure = Cause.failureOption(exit.cause);
  if (Option.isNone(failure)) {
    throw new Error(`internal error, not a typed one:\n${Cause.pretty(exit.cause)}`);
  }
  return { error: observe(failure.value) };
};

const observe = (e: unknown): Observed => {
  if ((e as { _tag?: string })._tag === "StepFailed") {
    const sf = e as StepFailed;
    return { tag: sf.error._tag, message: `step "${sf.node}" failed: ${describeError(sf.error)}` };
  }
  const te = e as ToolkitError;
  return { tag: te._tag, message: describeError(te) };
};

const failing = async (dir: string, pipeline: Pipeline): Promise<Observed> => {
  const r = await runInProcess(dir, pipeline);
  if (!r.error) throw new Error(`expected a failure, the run succeeded: ${r.statuses}`);
  return r.error;
};

/** Calls a loader; its typed failure is the observation. */
const loaderFailure = async (effect: Effect.Effect<unknown, unknown>): Promise<Observed> => {
  const exit = await Effect.runPromiseExit(effect);
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, the loader succeeded");
  const failure = Cause.failureOption(exit.cause);
  if (Option.isNone(failure)) {
    throw new Error(`internal error, not a typed one:\n${Cause.pretty(exit.cause)}`);
  }
  return observe(failure.value);
};

/** The CLI's own pipeline loader (src/cli/load_pipeline.ts), in-process: faster than a CLI run per row. */
const loadPipelineFailure = async (file: string) => {
  const { loadPipeline } = await import("../src/cli/load_pipeline.ts");
  return await loaderFailure(loadPipeline(file, {}));
};

// ---------------------------------------------------------------------------------------------------------
// Running the CLI

/** Each tag's message has its own wording (errors.ts describeError): how a CLI row's tag is read back. */
const wording: ReadonlyArray<[string, RegExp]> = [
  ["RunLocked", /is locked by pid/],
  ["NonFiniteLoss", /loss became /],
  ["KeyNotFound", /key span not found/],
  ["KeyTruncated", /key span cut off/],
  ["EmptyDataset", /no examples left in /],
  ["PipelineInvalid", /pipeline "[^"]*" is invalid/],
  ["InvalidConfig", /invalid configuration at /],
  ["WriteFailed", /could not write /],
  ["FileUnreadable", /cannot read /],
  ["TokenizerMismatch", /tokenizer \S+: /],
  ["CheckpointMalformed", /checkpoint \S+: /],
  ["AdapterInvalid", /adapter \S+: /],
  ["InvalidRow", /\S+:\d+( field "[^"]+")?: /],
];

/** The CLI as the command tasks start it: the launcher, which runs main.ts with scoped permissions. */
export const cli = async (args: string[], cwd = root) => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-env",
      "--allow-run",
      `${root}/src/cli/launch.ts`,
      ...args,
    ],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr).trim(),
  };
};

const cliFailure = async (args: string[]): Promise<Observed & { stdout: string }> => {
  const r = await cli(args);
  if (r.code === 0) throw new Error(`expected a non-zero exit, got 0:\n${r.stdout}`);
  if (/internal error|\n\s+at /.test(r.stderr)) {
    throw new Error(`a stack trace instead of a message:\n${r.stderr}`);
  }
  const tag = wording.find(([, re]) => re.test(r.stderr))?.[0] ?? "(untagged)";
  return { tag, message: r.stderr, stdout: r.stdout };
};

// ---------------------------------------------------------------------------------------------------------
// Inputs

const GOOD = { prompt: "What is 1 + 2?", response: "<Thinking>1+2=3</Thinking><Answer>3</Answer>" };
const good = JSON.stringify(GOOD);

/** A good row of each format. */
const goodRow: Record<string, string> = {
  tags: good,
  math: JSON.stringify({ problem: "What is 1 + 2?", solution: "1 + 2 = \\boxed{3}" }),
};

/** A data file whose first line is good and whose second is `bad` (so the line number is checked). */
const dataFile = async (dir: string, bad: string | Uint8Array, format = "tags") => {
  const path = `${dir}/train.jsonl`;
  const head = new TextEncoder().encode(`${goodRow[format]}\n`);
  const tail = typeof bad === "string" ? new TextEncoder().encode(`${bad}\n`) : bad;
  await Deno.writeFile(path, new Uint8Array([...head, ...tail]));
  return path;
};

const goodData = async (dir: string, n = 8) => {
  const path = `${dir}/train.jsonl`;
  const rows = (await Deno.readTextFile(`${root}/fixtures/arith/train.jsonl`)).split("\n").slice(0, n);
  await Deno.writeTextFile(path, rows.join("\n") + "\n");
  return path;
};

const dataCase = (
  name: string,
  bad: string | Uint8Array,
  expected: string,
  mentions: string[],
  prep: Partial<Prep> = {},
): BadInputCase => ({
  name,
  input: typeof bad === "string"
    ? `line 2: ${bad.length > 90 ? `${bad.slice(0, 90)}…` : bad}${
      prep.format ? ` (format ${prep.format})` : ""
    }`
    : `line 2: ${new TextDecoder().decode(bad).trim()} with a lone byte 0xE9`,
  expected,
  mentions,
  via: "step",
  run: async (dir) => failing(dir, prepPipeline({ data: await dataFile(dir, bad, prep.format), ...prep })),
});

const configCase = (
  name: string,
  input: string,
  prep: (data: string) => Prep,
  mentions: string[],
): BadInputCase => ({
  name,
  input,
  expected: "InvalidConfig",
  mentions,
  via: "step",
  run: async (dir) => failing(dir, prepPipeline(prep(await goodData(dir)))),
});

const writeModel = async (dir: string, config: ModelConfig) => {
  const params = initParams(config, Rng.seeded(0));
  await Effect.runPromise(saveCheckpoint(dir, config, params));
  disposeParams(params);
  return dir;
};

/** A checkpoint in `dir`/model and, in `dir`/adapter, an adapter_config.json of another PEFT method. */
const modelAndForeignAdapter = async (dir: string, config: Record<string, unknown>) => {
  const model = await writeModel(`${dir}/model`, tinyConfig(323));
  await Deno.mkdir(`${dir}/adapter`);
  await Deno.writeTextFile(
    `${dir}/adapter/adapter_config.json`,
    JSON.stringify({ task_type: "CAUSAL_LM", ...config }),
  );
  return model;
};

/** `command` (run, eval) on the checkpoint in `dir`/model with the fixture's tokenizer and `--adapter`. */
const adapterFailure = (dir: string, command: string, adapter: string, extra: string[] = []) =>
  cliFailure([
    command,
    "--model",
    `${dir}/model`,
    "--tokenizer",
    fixtureTokenizer,
    "--adapter",
    adapter,
    ...extra,
    "--run-dir",
    `${dir}/run`,
  ]);

/** A checkpoint directory with one tensor removed from model.safetensors. */
const modelWithoutTensor = async (dir: string, drop: string) => {
  await writeModel(dir, tinyConfig(323));
  const file = await Effect.runPromise(
    parseSafetensors(await Deno.readFile(`${dir}/model.safetensors`), "model.safetensors"),
  );
  file.tensors.delete(drop);
  await Deno.writeFile(`${dir}/model.safetensors`, serializeSafetensors(file.tensors, { format: "pt" }));
  return dir;
};

const pipelineFile = async (dir: string, body: string) => {
  const file = `${dir}/pipeline.ts`;
  const imports = [
    `import { PipelineBuilder } from "${root}/src/engine/pipeline.ts";`,
    `import { buildMasksStep } from "${root}/src/steps/build_masks.ts";`,
    `import { tokeniseStep } from "${root}/src/steps/tokenise.ts";`,
    `import { locateKeyStep } from "${root}/src/steps/locate_key.ts";`,
    `import { build as sftkey } from "${root}/pipelines/sftkey.ts";`,
  ];
  await Deno.writeTextFile(file, imports.join("\n") + "\n" + body + "\n");
  return file;
};

/** The shipped sftkey pipeline on `train` with a tiny budget and extra train settings, as a pipeline file. */
const tinySftkey = async (
  dir: string,
  train: string,
  test: string,
  trainOverrides: Record<string, unknown>,
) =>
  await pipelineFile(
    dir,
    `export const build = () => sftkey(${
      JSON.stringify({
        train,
        test,
        format: "tags",
        budget: {
          stageOneSteps: 4,
          stageTwoSteps: 2,
          train: { batchSize: 4, microBatchSize: 4, warmupSteps: 0, checkpointEvery: 1, ...trainOverrides },
        },
      })
    });`,
  );

/** A pretraining corpus tokenised with the fixture tokenizer (pipelines/pretrain.ts's first steps). */
const corpusPipeline = (corpus: string): Pipeline =>
  validate({
    name: "bad-input",
    description: "",
    nodes: [
      { kind: "source", name: "corpus", path: corpus },
      { kind: "source", name: "tokenizer", path: fixtureTokenizer },
      step("corpus-tokens", tokeniseCorpusStep, {}, { corpus: "corpus", tokenizer: "tokenizer" }),
    ],
  });

const assertThat = (ok: boolean, what: string) => {
  if (!ok) throw new Error(what);
};

/** `deno task eval` of the case directory (as the model) on a good data file, with `flags`: must fail. */
const evalFailure = async (dir: string, flags: string[]) => {
  const data = await goodData(dir);
  const args = ["eval", "--model", dir, "--data", data, "--format", "tags", ...flags];
  return await cliFailure([...args, "--run-dir", `${dir}/run`]);
};

// ---------------------------------------------------------------------------------------------------------
// The table

const longThinking = `<Thinking>${"1+1=2 ".repeat(60)}</Thinking><Answer>2</Answer>`;

export const cases: ReadonlyArray<BadInputCase> = [
  dataCase("malformed JSON line", '{"prompt": "What is 1 + 2?", "response": ', "InvalidRow", [
    "train.jsonl:2",
    "not valid JSON",
  ]),
  dataCase("wrong type", JSON.stringify({ prompt: 5, response: GOOD.response }), "InvalidRow", [
    "train.jsonl:2",
    'field "prompt"',
  ]),
  dataCase("missing field", JSON.stringify({ prompt: "p" }), "InvalidRow", [
    "train.jsonl:2",
    'field "response"',
    "missing",
  ]),
  dataCase("empty response", JSON.stringify({ prompt: "p", response: "" }), "InvalidRow", [
    "train.jsonl:2",
    'field "response"',
    "must not be empty",
  ]),
  dataCase("row is not an object", "[1, 2, 3]", "InvalidRow", ["train.jsonl:2", "JSON object"]),
  dataCase(
    "missing key span",
    JSON.stringify({ prompt: "p", response: "<Thinking>1+2=3</Thinking> the answer is 3" }),
    "KeyNotFound",
    ["train.jsonl:2", "answer-tags"],
  ),
  dataCase(
    "empty key span",
    JSON.stringify({ prompt: "p", response: "<Thinking>1+2=3</Thinking><Answer>  </Answer>" }),
    "KeyNotFound",
    ["train.jsonl:2"],
  ),
  dataCase(
    "key cut off by maxLength",
    JSON.stringify({ prompt: "p", response: longThinking }),
    "KeyTruncated",
    ["train.jsonl:2", "maxLength 64"],
    { tokens: { maxLength: 64 } },
  ),
  dataCase(
    "unbalanced \\boxed",
    JSON.stringify({ problem: "p", solution: "so \\boxed{\\frac{1}{2}" }),
    "KeyNotFound",
    ["train.jsonl:2", "boxed"],
    { format: "math" },
  ),
  dataCase(
    "nested, unbalanced \\boxed",
    JSON.stringify({ problem: "p", solution: "so \\boxed{\\boxed{5}" }),
    "KeyNotFound",
    ["train.jsonl:2", "boxed"],
    { format: "math" },
  ),
  dataCase(
    "several answer tags",
    JSON.stringify({ prompt: "p", response: "<Answer>3</Answer> or rather <Answer>4</Answer>" }),
    "InvalidRow",
    ["train.jsonl:2", 'field "response"', "2 answer blocks"],
  ),
  dataCase(
    "non-UTF-8 bytes",
    new Uint8Array([
      ...new TextEncoder().encode('{"prompt": "caf'),
      0xe9,
      ...new TextEncoder().encode('"}\n'),
    ]),
    "InvalidRow",
    ["train.jsonl:2", "UTF-8"],
  ),
  {
    name: "a 10 MB line",
    input: "one row with a 10 MB prompt",
    expected: "InvalidRow",
    mentions: ["train.jsonl:2", "maxRowChars"],
    via: "step",
    run: async (dir) =>
      failing(
        dir,
        prepPipeline({
          data: await dataFile(
            dir,
            JSON.stringify({ prompt: "x".repeat(10 * 1024 * 1024), response: GOOD.response }),
          ),
        }),
      ),
  },
  {
    name: "empty file",
    input: "a data file of 0 bytes",
    expected: "EmptyDataset",
    mentions: ["train.jsonl", "no rows"],
    via: "step",
    run: async (dir) => {
      await Deno.writeTextFile(`${dir}/train.jsonl`, "");
      return await failing(dir, prepPipeline({ data: `${dir}/train.jsonl` }));
    },
  },
  {
    name: "a directory instead of a file",
    input: "--data pointing at a directory",
    expected: "FileUnreadable",
    mentions: ["train.jsonl", "not a regular file"],
    via: "step",
    run: async (dir) => {
      await Deno.mkdir(`${dir}/train.jsonl`);
      await Deno.writeTextFile(`${dir}/train.jsonl/part.jsonl`, good);
      return await failing(dir, prepPipeline({ data: `${dir}/train.jsonl` }));
    },
  },
  {
    name: "missing data file",
    input: "a data path that does not exist",
    expected: "FileUnreadable",
    mentions: ["nowhere.jsonl"],
    via: "step",
    run: (dir) => failing(dir, prepPipeline({ data: `${dir}/nowhere.jsonl` })),
  },
  dataCase(
    "rows of another format",
    JSON.stringify({ question: "q", answer: "3\n#### 3" }),
    "InvalidRow",
    ["train.jsonl:2", 'field "prompt"'],
  ),
  {
    name: "tokenizer file missing",
    input: "a tokenizer path that does not exist",
    expected: "FileUnreadable",
    mentions: ["tokenizer.json"],
    via: "loader",
    run: async (dir) => {
      const { loadTokenizer } = await import("../src/data/tokenizer.ts");
      return await loaderFailure(loadTokenizer(`${dir}/tokenizer.json`));
    },
  },
  {
    name: "tokenizer not JSON",
    input: "tokenizer.json holding text",
    expected: "TokenizerMismatch",
    mentions: ["tokenizer.json", "not valid JSON"],
    via: "step",
    run: async (dir) => {
      await Deno.writeTextFile(`${dir}/tokenizer.json`, "vocab: a b c");
      return await failing(
        dir,
        prepPipeline({ data: await goodData(dir), tokenizer: `${dir}/tokenizer.json` }),
      );
    },
  },
  {
    name: "tokenizer without a model",
    input: 'tokenizer.json without a "model" object',
    expected: "TokenizerMismatch",
    mentions: ["tokenizer.json", '"model"'],
    via: "loader",
    run: async (dir) => {
      await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify({ version: "1.0" }));
      const { loadTokenizer } = await import("../src/data/tokenizer.ts");
      return await loaderFailure(loadTokenizer(`${dir}/tokenizer.json`));
    },
  },
  {
    name: "eos token not in the vocabulary",
    input: 'tokenizer_config.json with eos_token "<eos>" the vocabulary lacks',
    expected: "TokenizerMismatch",
    mentions: ["tokenizer.json", "eos_token", "<eos>"],
    via: "loader",
    run: async (dir) => {
      await Deno.copyFile(fixtureTokenizer, `${dir}/tokenizer.json`);
      await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ eos_token: "<eos>" }));
      const { loadTokenizer } = await import("../src/data/tokenizer.ts");
      return await loaderFailure(loadTokenizer(`${dir}/tokenizer.json`));
    },
  },
  {
    name: "tokenizer of the wrong model",
    input: "a 323-token tokenizer with a checkpoint whose vocabulary has 64 entries",
    expected: "TokenizerMismatch",
    mentions: ['step "stage"', "tokenizer.json", "vocabulary of 64"],
    via: "step",
    run: async (dir) =>
      failing(
        dir,
        prepPipeline({
          data: await goodData(dir),
          init: await writeModel(`${dir}/small-model`, tinyConfig(64)),
          train: trainConfig({}, false),
        }),
      ),
  },
  configCase(
    "unknown config field",
    "train config with a misspelt field lrr",
    (data) => ({ data, train: trainConfig({ lrr: 0.1 }) }),
    ["stage.config", "lrr"],
  ),
  configCase(
    "negative learning rate",
    "train config lr = -0.001",
    (data) => ({ data, train: trainConfig({ lr: -1e-3 }) }),
    ["stage.config", "lr"],
  ),
  configCase(
    "prefix k = 0",
    'mask {"kind": "prefix", "k": 0}',
    (data) => ({ data, mask: { kind: "prefix", k: 0 } }),
    ["masks.config", "k"],
  ),
  configCase(
    "maxLength 0",
    "tokenise maxLength = 0",
    (data) => ({ data, tokens: { maxLength: 0 } }),
    ["tokens.config", "maxLength"],
  ),
  configCase(
    "template without {prompt}",
    'tokenise template "Question:"',
    (data) => ({ data, tokens: { template: "Question:" } }),
    ["tokens.config", "{prompt}"],
  ),
  {
    name: "unknown field in a pipeline file",
    input: "PipelineBuilder.add with a config field the step does not have",
    expected: "PipelineInvalid",
    mentions: ['node "masks"', "weight"],
    via: "loader",
    run: () => {
      const p = new PipelineBuilder("typo");
      const tokens = p.source("tokens", "/nonexistent");
      // deno-lint-ignore no-explicit-any
      p.add("masks", buildMasksStep, { mask: { kind: "key" }, weight: 2 } as any, { tokens });
      return loaderFailure(Effect.try({ try: () => p.build(), catch: (e) => e }));
    },
  },
  {
    name: "pipeline file with a cycle",
    input: "a pipeline file whose nodes a and b feed each other",
    expected: "PipelineInvalid",
    mentions: ["cycle", "a -> b -> a"],
    via: "cli",
    run: async (dir) => {
      const file = await pipelineFile(
        dir,
        `export const build = () => {
  const p = new PipelineBuilder("cyclic");
  p.add("a", buildMasksStep, { mask: { kind: "key" } }, { tokens: { node: "b" } });
  p.add("b", buildMasksStep, { mask: { kind: "key" } }, { tokens: { node: "a" } });
  return p.build();
};`,
      );
      return await cliFailure(["run", file, "--run-dir", `${dir}/run`]);
    },
  },
  {
    name: "pipeline file with a missing input",
    input: "a pipeline file whose tokenise node has no tokenizer",
    expected: "PipelineInvalid",
    mentions: ['node "tokens"', 'input "tokenizer"', "not connected"],
    via: "cli",
    run: async (dir) => {
      const file = await pipelineFile(
        dir,
        `export const build = () => {
  const p = new PipelineBuilder("unwired");
  const data = p.source("data", "train.jsonl");
  const examples = p.add("keys", locateKeyStep, { format: "tags", onMissingKey: "fail" }, { data });
  p.add("tokens", tokeniseStep, { template: "{prompt}", maxLength: 64, onTruncatedKey: "fail" }, { examples });
  return p.build();
};`,
      );
      return await cliFailure(["run", file, "--run-dir", `${dir}/run`]);
    },
  },
  {
    name: "unknown pipeline name",
    input: "deno task pipeline sftkye",
    expected: "PipelineInvalid",
    mentions: ["sftkye", "no such pipeline"],
    via: "cli",
    run: (dir) => cliFailure(["run", "sftkye", "--run-dir", `${dir}/run`]),
  },
  {
    name: "--data without --format",
    input: "deno task pipeline --data train.jsonl",
    expected: "InvalidConfig",
    mentions: ["--format"],
    via: "cli",
    run: async (dir) => cliFailure(["run", "--data", await goodData(dir), "--run-dir", `${dir}/run`]),
  },
  {
    name: "--format messages without --locator",
    input:
      "deno task pipeline --data chat.jsonl --test chat.jsonl --format messages (rows with an answer field)",
    expected: "InvalidConfig",
    mentions: ["--locator", "messages", "answer field"],
    via: "cli",
    run: async (dir) => {
      const chat = `${dir}/chat.jsonl`;
      const row = {
        messages: [{ role: "user", content: "What is 1 + 2?" }, { role: "assistant", content: "1 + 2 = 3" }],
        answer: "3",
      };
      await Deno.writeTextFile(chat, `${JSON.stringify(row)}\n`);
      return await cliFailure([
        "run",
        "--data",
        chat,
        "--test",
        chat,
        "--format",
        "messages",
        "--run-dir",
        `${dir}/run`,
      ]);
    },
  },
  {
    name: "--model directory without tokenizer files",
    input:
      "deno task pipeline --model DIR, DIR without tokenizer.json or vocab.json + merges.txt, no --tokenizer",
    expected: "InvalidConfig",
    mentions: ["--model", "--tokenizer"],
    via: "cli",
    run: async (dir) => {
      // A valid checkpoint (config.json + weights) that ships no tokenizer files.
      const model = await writeModel(`${dir}/model`, tinyConfig(323));
      return await cliFailure(["run", "--model", model, "--run-dir", `${dir}/run`]);
    },
  },
  {
    name: "--eval-on-train with --test",
    input: "deno task pipeline --data train.jsonl --test test.jsonl --format tags --eval-on-train",
    expected: "InvalidConfig",
    mentions: ["--eval-on-train"],
    via: "cli",
    run: async (dir) => {
      const data = await goodData(dir);
      const args = ["run", "--data", data, "--test", data, "--format", "tags", "--eval-on-train"];
      return await cliFailure([...args, "--run-dir", `${dir}/run`]);
    },
  },
  {
    name: "--data with one row and no --test",
    input: "deno task pipeline --data one-row.jsonl --format tags (nothing to hold out for evaluation)",
    expected: "EmptyDataset",
    mentions: ["train.jsonl", "--test", "--eval-on-train"],
    via: "cli",
    run: async (dir) =>
      cliFailure(["run", "--data", await goodData(dir, 1), "--format", "tags", "--run-dir", `${dir}/run`]),
  },
  {
    name: "eval --samples without --temperature",
    input: "deno task eval --model DIR --data test.jsonl --format tags --samples 4",
    expected: "InvalidConfig",
    mentions: ["--samples", "--temperature"],
    via: "cli",
    run: (dir) => evalFailure(dir, ["--samples", "4"]),
  },
  {
    name: "eval --rollouts with --samples",
    input:
      "deno task eval --model DIR --data test.jsonl --format tags --rollouts 8 --samples 4 --temperature 1",
    expected: "InvalidConfig",
    mentions: ["--rollouts", "--samples"],
    via: "cli",
    run: (dir) => evalFailure(dir, ["--rollouts", "8", "--samples", "4", "--temperature", "1"]),
  },
  {
    name: "eval --rollouts 0",
    input: "deno task eval --model DIR --data test.jsonl --format tags --rollouts 0",
    expected: "InvalidConfig",
    mentions: ["--rollouts", "must be positive"],
    via: "cli",
    run: (dir) => evalFailure(dir, ["--rollouts", "0"]),
  },
  {
    name: "bad row in the test file; finished steps stay cached",
    input: "a valid training file and a test file whose line 3 is not JSON, run twice",
    expected: "InvalidRow",
    mentions: ["test.jsonl:3", "not valid JSON"],
    via: "cli",
    run: async (dir) => {
      const train = await goodData(dir, 16);
      const test = `${dir}/test.jsonl`;
      await Deno.writeTextFile(test, `${good}\n${good}\n{"prompt": oops}\n`);
      const file = await tinySftkey(dir, train, test, {});
      const args = ["run", file, "--run-dir", `${dir}/run`, "--backend", "cpu"];
      await cliFailure(args);
      const again = await cliFailure(args);
      // The training data's steps ran before the test file's and are reused, not redone.
      assertThat(/\[train-keys\] cached/.test(again.stdout), `train-keys not cached:\n${again.stdout}`);
      assertThat(/\[train-tokens\] cached/.test(again.stdout), `train-tokens not cached:\n${again.stdout}`);
      return again;
    },
  },
  {
    name: "NaN/Inf loss during training",
    input: "stage one with lr = 1e30 (a pipeline file), checkpoint every step",
    expected: "NonFiniteLoss",
    mentions: ['step "sftkey-stage-one"', "at optimizer step", "last good checkpoint kept at"],
    via: "cli",
    run: async (dir) => {
      const train = await goodData(dir, 16);
      const file = await tinySftkey(dir, train, train, { lr: 1e30 });
      const args = ["run", file, "--run-dir", `${dir}/run`, "--backend", "cpu"];
      const first = await cliFailure(args);
      const kept = /last good checkpoint kept at (\S+?);?$/m.exec(first.message)?.[1];
      assertThat(kept !== undefined, `no checkpoint named: ${first.message}`);
      assertThat(
        (await Deno.stat(`${kept}/model.safetensors`).catch(() => undefined)) !== undefined,
        `the last good checkpoint ${kept} is not on disk`,
      );
      const again = await cliFailure(args);
      assertThat(/\[mask-response\] cached/.test(again.stdout), `masks not cached:\n${again.stdout}`);
      return first;
    },
  },
  {
    name: "disk full while writing an artifact",
    input: "the file system refuses writes after 100 bytes while buildMasks writes masked.jsonl",
    expected: "WriteFailed",
    mentions: ['step "masks"', "masked.jsonl", "No space left on device"],
    via: "step",
    run: async (dir) => {
      const data = await goodData(dir);
      // Tokenising finishes first; then the disk "fills up" for the mask step.
      const upToTokens = prepPipeline({ data });
      const noMasks = { ...upToTokens, nodes: upToTokens.nodes.filter((n) => n.name !== "masks") };
      await runInProcess(dir, noMasks);
      let budget = 100;
      setChunkWriter(async (file, bytes) => {
        if (budget <= 0) throw new Error("No space left on device (os error 28)");
        const n = await file.write(bytes.subarray(0, Math.min(bytes.length, budget)));
        budget -= n;
        return n;
      });
      let observed: Observed;
      try {
        observed = await failing(dir, prepPipeline({ data }));
      } finally {
        setChunkWriter(undefined);
      }
      const files = await listFiles(`${dir}/artifacts`);
      assertThat(!files.some(isTempFile), `temporary files left: ${files}`);
      assertThat(
        !files.some((f) => f.startsWith("buildMasks/") && !f.includes(".partial/")),
        "a mask artifact",
      );
      const again = await runInProcess(dir, prepPipeline({ data }));
      assertThat(
        String(again.statuses) === "keys:cached,tokens:cached,masks:ran",
        `after the disk is freed: ${again.statuses ?? again.error?.message}`,
      );
      return observed;
    },
  },
  {
    name: "checkpoint with a missing tensor",
    input: "--model directory whose model.safetensors lacks one MLP weight",
    expected: "CheckpointMalformed",
    mentions: ["model.safetensors", "missing tensor model.layers.0.mlp.up_proj.weight"],
    via: "step",
    run: async (dir) =>
      failing(
        dir,
        prepPipeline({
          data: await goodData(dir),
          init: await modelWithoutTensor(`${dir}/model`, "model.layers.0.mlp.up_proj.weight"),
          train: trainConfig({}, false),
        }),
      ),
  },
  {
    name: "checkpoint with a missing shard",
    input: "model.safetensors.index.json naming a shard file that is absent",
    expected: "CheckpointMalformed",
    mentions: ["model.safetensors.index.json", "model-00002-of-00002.safetensors", "missing"],
    via: "loader",
    run: async (dir) => {
      const model = await writeModel(`${dir}/model`, tinyConfig(323));
      await Deno.rename(`${model}/model.safetensors`, `${model}/model-00001-of-00002.safetensors`);
      const file = await Effect.runPromise(
        parseSafetensors(await Deno.readFile(`${model}/model-00001-of-00002.safetensors`), "shard"),
      );
      const names = [...file.tensors.keys()];
      const weightMap = Object.fromEntries(
        names.map((n, i) => [n, `model-0000${i % 2 + 1}-of-00002.safetensors`]),
      );
      await Deno.writeTextFile(
        `${model}/model.safetensors.index.json`,
        JSON.stringify({ metadata: {}, weight_map: weightMap }),
      );
      return await loaderFailure(loadCheckpoint(model));
    },
  },
  {
    name: "checkpoint without config.json",
    input: "--model directory holding only model.safetensors",
    expected: "FileUnreadable",
    mentions: ["config.json"],
    via: "loader",
    run: async (dir) => {
      const model = await writeModel(`${dir}/model`, tinyConfig(323));
      await Deno.remove(`${model}/config.json`);
      return await loaderFailure(loadCheckpoint(model));
    },
  },
  {
    name: "--tokenizer that does not exist",
    input: "deno task pipeline --tokenizer missing/tokenizer.json",
    expected: "FileUnreadable",
    mentions: ["missing/tokenizer.json"],
    via: "cli",
    run: (dir) =>
      cliFailure(["run", "--tokenizer", `${dir}/missing/tokenizer.json`, "--run-dir", `${dir}/run`]),
  },
  {
    name: "--tokenizer that is not JSON",
    input: "deno task pipeline --tokenizer notes.json (two lines of text)",
    expected: "TokenizerMismatch",
    mentions: ["notes.json", "not valid JSON"],
    via: "cli",
    run: async (dir) => {
      await Deno.writeTextFile(`${dir}/notes.json`, "vocab: a b c\nmerges: none\n");
      return await cliFailure(["run", "--tokenizer", `${dir}/notes.json`, "--run-dir", `${dir}/run`]);
    },
  },
  {
    name: "--model directory that does not exist",
    input: "deno task pipeline --model no-such-model",
    expected: "FileUnreadable",
    mentions: ["no-such-model", "--model"],
    via: "cli",
    run: (dir) => cliFailure(["run", "--model", `${dir}/no-such-model`, "--run-dir", `${dir}/run`]),
  },
  {
    name: "--model with a malformed config.json",
    input: "deno task pipeline --model DIR whose config.json is cut off",
    expected: "CheckpointMalformed",
    mentions: ["model/config.json", "not JSON"],
    via: "cli",
    run: async (dir) => {
      const model = await writeModel(`${dir}/model`, tinyConfig(323));
      const text = await Deno.readTextFile(`${model}/config.json`);
      await Deno.writeTextFile(`${model}/config.json`, text.slice(0, text.length / 2));
      return await cliFailure([
        "run",
        "--model",
        model,
        "--tokenizer",
        fixtureTokenizer,
        "--run-dir",
        `${dir}/run`,
      ]);
    },
  },
  {
    name: "LoRA adapter of another PEFT type",
    input: 'deno task merge --adapter DIR whose adapter_config.json says peft_type "PREFIX_TUNING"',
    expected: "AdapterInvalid",
    mentions: ["adapter_config.json", "PREFIX_TUNING"],
    via: "cli",
    run: async (dir) => {
      const model = await modelAndForeignAdapter(dir, { peft_type: "PREFIX_TUNING", num_virtual_tokens: 20 });
      return await cliFailure([
        "merge",
        "--model",
        model,
        "--adapter",
        `${dir}/adapter`,
        "--out",
        `${dir}/out`,
      ]);
    },
  },
  {
    name: "LoRA adapter whose shapes do not fit the model",
    input: "an adapter of rank 4 whose lora_B of q_proj has 17 rows, the model's q_proj 16 outputs",
    expected: "AdapterInvalid",
    mentions: ["adapter_model.safetensors", "q_proj.lora_B.weight", "[17, 4]"],
    via: "loader",
    run: async (dir) => {
      const config = { ...tinyConfig(323), hiddenSize: 16, numHeads: 4, numKvHeads: 4, numLayers: 1 };
      const a = { shape: [4, 16], data: new Float32Array(64) };
      const tensors = new Map([
        ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", a],
        ["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", {
          shape: [17, 4],
          data: new Float32Array(68),
        }],
      ]);
      await Deno.writeTextFile(
        `${dir}/adapter_config.json`,
        JSON.stringify({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj"] }),
      );
      await Deno.writeFile(`${dir}/adapter_model.safetensors`, serializeSafetensors(tensors));
      const { loadAdapter } = await import("../src/model/peft.ts");
      const params = initParams(config, Rng.seeded(0));
      try {
        return await loaderFailure(loadAdapter(dir, config, params));
      } finally {
        disposeParams(params);
      }
    },
  },
  {
    name: "--lora-stage-two with an unknown value",
    input: "deno task pipeline --lora --lora-stage-two other",
    expected: "InvalidConfig",
    mentions: ["--lora-stage-two", "continue or new", '"other"'],
    via: "cli",
    run: (dir) => cliFailure(["run", "--lora", "--lora-stage-two", "other", "--run-dir", `${dir}/run`]),
  },
  {
    name: "--lora-stage-two without --lora",
    input: "deno task pipeline --lora-stage-two new",
    expected: "InvalidConfig",
    mentions: ["--lora-stage-two", "needs --lora"],
    via: "cli",
    run: (dir) => cliFailure(["run", "--lora-stage-two", "new", "--run-dir", `${dir}/run`]),
  },
  {
    name: "--adapter directory that does not exist",
    input: "deno task pipeline --model DIR --adapter no-such-adapter",
    expected: "FileUnreadable",
    mentions: ["no-such-adapter/adapter_config.json"],
    via: "cli",
    run: async (dir) => {
      await writeModel(`${dir}/model`, tinyConfig(323));
      return await adapterFailure(dir, "run", `${dir}/no-such-adapter`);
    },
  },
  {
    name: "--adapter of another PEFT type as a training start",
    input: 'deno task pipeline --model DIR --adapter DIR whose adapter_config.json says peft_type "IA3"',
    expected: "AdapterInvalid",
    mentions: ["adapter/adapter_config.json", '"IA3"'],
    via: "cli",
    run: async (dir) => {
      await modelAndForeignAdapter(dir, { peft_type: "IA3", target_modules: ["k_proj"] });
      return await adapterFailure(dir, "run", `${dir}/adapter`, ["--lora"]);
    },
  },
  {
    name: "eval --adapter that does not exist",
    input: "deno task eval --model DIR --adapter no-such-adapter --data FILE --format tags",
    expected: "FileUnreadable",
    mentions: ["no-such-adapter/adapter_config.json"],
    via: "cli",
    run: async (dir) => {
      await writeModel(`${dir}/model`, tinyConfig(323));
      return await adapterFailure(dir, "eval", `${dir}/no-such-adapter`, [
        "--data",
        await goodData(dir),
        "--format",
        "tags",
      ]);
    },
  },
  {
    name: "--adapter without --model",
    input: "deno task pipeline --adapter DIR (no --model)",
    expected: "InvalidConfig",
    mentions: ["--adapter", "needs --model"],
    via: "cli",
    run: async (dir) => {
      await Deno.mkdir(`${dir}/adapter`);
      return await cliFailure(["run", "--adapter", `${dir}/adapter`, "--run-dir", `${dir}/run`]);
    },
  },
  {
    name: "pipeline file that does not exist",
    input: "deno task pipeline mine.ts (no such file)",
    expected: "FileUnreadable",
    mentions: ["mine.ts"],
    via: "loader",
    run: (dir) => loadPipelineFailure(`${dir}/mine.ts`),
  },
  {
    name: "pipeline file without build",
    input: "a pipeline file that exports no build function",
    expected: "PipelineInvalid",
    mentions: ["pipeline.ts", "does not export build()"],
    via: "loader",
    run: async (dir) => loadPipelineFailure(await pipelineFile(dir, "export const pipeline = 1;")),
  },
  {
    name: "pipeline file that does not parse",
    input: "a pipeline file with a syntax error on its line 6",
    expected: "PipelineInvalid",
    mentions: ["pipeline.ts:6:"],
    via: "cli",
    run: async (dir) => {
      const file = await pipelineFile(dir, "export const build = ( => p;");
      return await cliFailure(["run", file, "--run-dir", `${dir}/run`]);
    },
  },
  {
    name: "pipeline file whose build throws",
    input: "a pipeline file whose build() throws an Error",
    expected: "PipelineInvalid",
    mentions: ["pipeline.ts", "build() threw", "no dataset configured"],
    via: "loader",
    run: async (dir) => {
      const file = await pipelineFile(
        dir,
        'export const build = () => {\n  throw new Error("no dataset configured\\nsee the docs");\n};',
      );
      return await loadPipelineFailure(file);
    },
  },
  {
    name: "--force with an unknown node",
    input: "deno task pipeline --force sftkey-stage-on (a typo)",
    expected: "InvalidConfig",
    mentions: ["--force", '"sftkey-stage-on"', "sftkey-stage-one", "eval-sft"],
    via: "cli",
    run: (dir) => cliFailure(["run", "--quick", "--force", "sftkey-stage-on", "--run-dir", `${dir}/run`]),
  },
  {
    name: "addTokens: a token the tokenizer already has",
    input: "addTokens asked to add <|endoftext|>, which the tokenizer already has",
    expected: "TokenizerMismatch",
    mentions: ["tokenizer.json", "<|endoftext|>", "already in the vocabulary", "grow"],
    via: "step",
    run: async (dir) =>
      failing(dir, growPipeline(await writeModel(`${dir}/model`, tinyConfig(324)), ["<|endoftext|>"])),
  },
  {
    name: "addTokens: the tokenizer of another model",
    input: "addTokens on a checkpoint of 100 rows with a tokenizer of 324 ids",
    expected: "TokenizerMismatch",
    mentions: ["tokenizer.json", "100 rows", "do not belong together"],
    via: "step",
    run: async (dir) =>
      failing(dir, growPipeline(await writeModel(`${dir}/model`, tinyConfig(100)), ["<x>"])),
  },
  {
    name: "treeSearch: a prompt the arithmetic expander cannot read",
    input: 'treeSearch (expander "arith") on a tags file whose line 2 asks "Name a prime."',
    expected: "InvalidRow",
    mentions: ["data.jsonl:2", 'field "prompt"', "What is 9 - 3 + 2?", "search"],
    via: "step",
    run: async (dir) => {
      const data = `${dir}/data.jsonl`;
      await Deno.writeTextFile(
        data,
        [
          JSON.stringify({ prompt: "What is 1 + 2?", response: "<Answer>3</Answer>" }),
          JSON.stringify({ prompt: "Name a prime.", response: "<Answer>7</Answer>" }),
        ].join("\n") + "\n",
      );
      return failing(
        dir,
        validate({
          name: "bad-input",
          description: "",
          nodes: [
            { kind: "source", name: "data", path: data },
            step("search", treeSearchStep, { ...TREE_SEARCH_DEFAULTS, format: "tags" }, { data: "data" }),
          ],
        }),
      );
    },
  },
  {
    name: "run directory in use",
    input: "a second run on a run directory another live process holds",
    expected: "RunLocked",
    mentions: ["/run is locked by pid"],
    via: "cli",
    run: async (dir) => {
      const code = `import { Effect } from "effect";
import { lockRunDir } from "${root}/src/engine/lock.ts";
await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
  yield* lockRunDir("${dir}/run");
  console.log("locked");
  yield* Effect.never;
})));`;
      const holder = new Deno.Command(Deno.execPath(), { args: ["eval", code], cwd: root, stdout: "piped" })
        .spawn();
      try {
        const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
        assertThat((await reader.read()).value?.trim() === "locked", "the holder did not take the lock");
        reader.releaseLock();
        const seen = await cliFailure(["run", "--quick", "--run-dir", `${dir}/run`]);
        assertThat(seen.message.includes(`pid ${holder.pid}`), `not the holder's pid: ${seen.message}`);
        return seen;
      } finally {
        holder.kill("SIGKILL");
        await holder.status;
        await holder.stdout.cancel().catch(() => {});
      }
    },
  },
  {
    name: "pretraining corpus row without text",
    input: 'corpus.jsonl line 2: {"body": "no text"}',
    expected: "InvalidRow",
    mentions: ["corpus.jsonl:2", 'field "text"'],
    via: "step",
    run: async (dir) => {
      await Deno.writeTextFile(`${dir}/corpus.jsonl`, '{"text": "1 + 2 = 3"}\n{"body": "no text"}\n');
      return await failing(dir, corpusPipeline(`${dir}/corpus.jsonl`));
    },
  },
  {
    name: "pretraining corpus of another kind of file",
    input: "a corpus path ending in .csv",
    expected: "FileUnreadable",
    mentions: ["corpus.csv", ".jsonl or .txt"],
    via: "step",
    run: async (dir) => {
      await Deno.writeTextFile(`${dir}/corpus.csv`, "text\n1 + 2 = 3\n");
      return await failing(dir, corpusPipeline(`${dir}/corpus.csv`));
    },
  },
];
