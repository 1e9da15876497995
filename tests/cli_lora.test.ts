/**
 * The LoRA command line: `merge` (src/cli/merge.ts) writes a checkpoint that `score` agrees with when
 * scoring the base with `--adapter`, and the --lora flags (src/cli/lora_flags.ts) give the train step's
 * settings or a typed error; `deno task pipeline sftkey --model DIR --lora` run through the launcher writes
 * an adapter per stage that `deno task merge` turns into a checkpoint `deno task score` agrees with, for
 * stage two continuing stage one's adapter (the default) and training a new one (--lora-stage-two new).
 */
import * as tf from "@tensorflow/tfjs";
import { Effect, Option } from "effect";
import { decodeModelConfig } from "../src/model/config.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { attachFreshAdapter, defaultTargets } from "../src/model/lora.ts";
import { disposeParams, initParams, paramShapes } from "../src/model/model.ts";
import { readAdapter, saveAdapter } from "../src/model/peft.ts";
import { runMerge } from "../src/cli/merge.ts";
import { runScore } from "../src/cli/score.ts";
import { loraFromFlags, loraStageTwoFromFlags } from "../src/cli/lora_flags.ts";
import { Rng } from "../src/util/rng.ts";
import { tinyModel, tokenizerVocabSize } from "../pipelines/data.ts";
import { assert, assertEquals } from "./assert.ts";
import { cli, root } from "./bad_input_cases.ts";

await tf.setBackend("cpu");

Deno.test("merge: the merged checkpoint scores like base + --adapter, and unlike the base alone", async () => {
  const c = Effect.runSync(decodeModelConfig({
    architecture: "qwen2",
    vocabSize: 50,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 32,
    maxPositions: 64,
    tieEmbeddings: true,
  }, "test"));
  const dir = await Deno.makeTempDir({ prefix: "lora-merge-" });
  const params = initParams(c, Rng.seeded(1));
  await Effect.runPromise(saveCheckpoint(`${dir}/base`, c, params));
  const settings = { r: 4, alpha: 8, dropout: 0 };
  attachFreshAdapter(params, c, paramShapes(c), settings, Rng.seeded(2));
  const rng = Rng.seeded(3);
  for (const [name, v] of params) {
    if (name.includes("lora_B")) {
      v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal()), v.shape));
    }
  }
  await Effect.runPromise(
    saveAdapter(`${dir}/adapter`, c, params, settings, defaultTargets(c), `${dir}/base`),
  );
  disposeParams(params);

  const { modules } = await Effect.runPromise(
    runMerge({ model: `${dir}/base`, adapter: `${dir}/adapter`, out: `${dir}/merged` }),
  );
  assertEquals(modules, 2 * 7);
  const ids = "3,14,15,9,26,5,35";
  const score = (model: string, adapter?: string) =>
    Effect.runPromise(runScore({ model, adapter, ids })).then((r) => r.tokens.map((t) => t.logprob ?? 0));
  const merged = await score(`${dir}/merged`);
  const adapted = await score(`${dir}/base`, `${dir}/adapter`);
  const base = await score(`${dir}/base`);
  const diff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  assert(diff(merged, adapted) <= 1e-4, `merged vs adapted: ${diff(merged, adapted)}`);
  assert(diff(merged, base) > 1e-3, "the adapter changes the scores");
});

const flags = (over: Partial<Parameters<typeof loraFromFlags>[0]>) => ({
  lora: false,
  loraR: Option.none(),
  loraAlpha: Option.none(),
  loraDropout: Option.none(),
  loraTargets: Option.none(),
  useRslora: false,
  loraStageTwo: Option.none(),
  ...over,
});

Deno.test("lora flags: absent without --lora, defaults with it, the given values otherwise", () => {
  assertEquals(Effect.runSync(loraFromFlags(flags({}))), undefined);
  assertEquals(Effect.runSync(loraFromFlags(flags({ lora: true }))), { r: 8, alpha: 16, dropout: 0 });
  assertEquals(
    Effect.runSync(loraFromFlags(flags({
      lora: true,
      loraR: Option.some(4),
      loraAlpha: Option.some(4),
      loraDropout: Option.some(0.1),
      loraTargets: Option.some("q_proj, v_proj"),
      useRslora: true,
    }))),
    { r: 4, alpha: 4, dropout: 0.1, targets: ["q_proj", "v_proj"], useRslora: true },
  );
});

Deno.test("lora flags: a setting without --lora, or out of range, is an InvalidConfig naming the flag", () => {
  const fails = (f: ReturnType<typeof flags>, where: string) => {
    const e = Effect.runSync(Effect.flip(loraFromFlags(f)));
    assertEquals([e._tag, e.where], ["InvalidConfig", where]);
  };
  fails(flags({ loraR: Option.some(4) }), "--lora-r");
  fails(flags({ useRslora: true }), "--use-rslora");
  fails(flags({ lora: true, loraR: Option.some(0) }), "--lora-r");
  fails(flags({ lora: true, loraDropout: Option.some(1) }), "--lora-dropout");
  fails(flags({ lora: true, loraTargets: Option.some(" , ") }), "--lora-targets");
});

Deno.test("lora flags: an --adapter to continue gives the defaults, and a flag that contradicts it is an InvalidConfig", () => {
  const adapter = {
    dir: "/a",
    settings: { r: 4, alpha: 4, dropout: 0.05, targets: ["q_proj"], useRslora: true },
  };
  assertEquals(Effect.runSync(loraFromFlags(flags({ lora: true }), adapter)), adapter.settings);
  assertEquals(
    Effect.runSync(loraFromFlags(flags({ lora: true, loraDropout: Option.some(0) }), adapter)),
    { ...adapter.settings, dropout: 0 },
  );
  const e = Effect.runSync(Effect.flip(loraFromFlags(flags({ lora: true, loraR: Option.some(8) }), adapter)));
  assertEquals([e._tag, e.where], ["InvalidConfig", "--lora-r"]);
  assert(e.reason.includes("(/a) has 4"), e.reason);
  const t = Effect.runSync(
    Effect.flip(loraFromFlags(flags({ lora: true, loraTargets: Option.some("v_proj") }), adapter)),
  );
  assertEquals(t.where, "--lora-targets");
  assertEquals(
    Effect.runSync(loraFromFlags(flags({ lora: true, loraTargets: Option.some(" q_proj ") }), adapter)),
    adapter.settings,
  );
  const stageTwo = (v?: string) =>
    Effect.runSync(loraStageTwoFromFlags(flags({ lora: true, loraStageTwo: Option.fromNullable(v) })));
  assertEquals([stageTwo(), stageTwo("new"), stageTwo("continue")], [undefined, "new", "continue"]);
});

// ---------------------------------------------------------------------------------------------------------
// `deno task pipeline sftkey --model DIR --lora`, `merge` and `score` as a user types them (the launcher).

const TRAIN = '{"prompt":"What is 1 + 1?","response":"<Thinking>1+1=2</Thinking><Answer>2</Answer>"}';
const OTHER = '{"prompt":"What is 2 + 1?","response":"<Thinking>2+1=3</Thinking><Answer>3</Answer>"}';
const IDS = "3,14,15,9,26,5,35,8,9,7";

/** A tiny Llama checkpoint with the arithmetic fixture's tokenizer, and a small data set. */
const userFiles = async (dir: string) => {
  const c = {
    ...tinyModel(tokenizerVocabSize(`${root}/fixtures/arith/tokenizer.json`)),
    hiddenSize: 32,
    intermediateSize: 64,
  };
  const params = initParams(c, Rng.seeded(7));
  await Effect.runPromise(saveCheckpoint(`${dir}/base`, c, params));
  disposeParams(params);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${root}/fixtures/arith/${f}`, `${dir}/base/${f}`);
  }
  await Deno.writeTextFile(`${dir}/train.jsonl`, `${[TRAIN, OTHER, TRAIN, OTHER].join("\n")}\n`);
  await Deno.writeTextFile(`${dir}/test.jsonl`, `${TRAIN}\n${OTHER}\n`);
};

/** The tiny generation budget and the backend of every run and eval of these tests. */
const QUICK = ["--max-new-tokens", "4", "--backend", "cpu"];

/** --data, --test and --format of every run. */
const dataArgs = (dir: string) => [
  "--data",
  `${dir}/train.jsonl`,
  "--test",
  `${dir}/test.jsonl`,
  "--format",
  "tags",
  ...QUICK,
];

const ok = async (args: string[]) => {
  const r = await cli(args);
  assertEquals(r.code, 0, `${args.join(" ")}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};

/** `deno task score --json` of IDS: the log-probabilities. */
const scoreCli = async (model: string, adapter?: string) => {
  const out = await ok([
    "score",
    "--model",
    model,
    ...(adapter ? ["--adapter", adapter] : []),
    "--ids",
    IDS,
    "--json",
    "--backend",
    "cpu",
  ]);
  return (JSON.parse(out.trim().split("\n").at(-1)!) as { tokens: Array<{ logprob: number | null }> })
    .tokens.map((t) => t.logprob ?? 0);
};

const scoreHere = (model: string) =>
  Effect.runPromise(runScore({ model, ids: IDS })).then((r) => r.tokens.map((t) => t.logprob ?? 0));

const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));

/** The artifact directory of each node of a finished run, by node name. */
const artifactsOf = async (runDir: string) => {
  const summary = JSON.parse(await Deno.readTextFile(`${runDir}/summary.json`)) as {
    steps: Array<{ name: string; step: string; key: string }>;
  };
  return new Map(summary.steps.map((s) => [s.name, `${runDir}/artifacts/${s.step}/${s.key}`]));
};

const baseOf = async (adapter: string) =>
  (JSON.parse(await Deno.readTextFile(`${adapter}/adapter_config.json`)) as {
    base_model_name_or_path: string;
  }).base_model_name_or_path;

Deno.test("pipeline sftkey --model DIR --lora: both stages' adapters merge into checkpoints that score agrees with (continue and new); eval --adapter; --adapter as a training start", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-lora-cli-" });
  try {
    await userFiles(dir);
    const run = (extra: string[]) =>
      ok([
        "run",
        "sftkey",
        "--model",
        `${dir}/base`,
        ...dataArgs(dir),
        "--lora",
        "--lora-r",
        "4",
        "--stage-one-steps",
        "2",
        "--stage-two-steps",
        "2",
        "--batch-size",
        "2",
        "--lr",
        "0.01",
        "--stage-two-lr",
        "0.01",
        "--run-dir",
        `${dir}/run`,
        ...extra,
      ]);
    const base = await scoreCli(`${dir}/base`);
    /** merge (CLI) the adapter onto `onto`; its scores must be score --adapter's and the node's model/'s. */
    const mergesLikeScore = async (node: string, onto: string, out: string) => {
      await ok(["merge", "--model", onto, "--adapter", `${node}/adapter`, "--out", out]);
      const merged = await scoreCli(out);
      const adapted = await scoreCli(onto, `${node}/adapter`);
      const trained = await scoreHere(`${node}/model`);
      assert(maxDiff(merged, adapted) <= 1e-4, `merged vs --adapter: ${maxDiff(merged, adapted)}`);
      assert(maxDiff(merged, trained) <= 1e-5, `merged vs the node's model/: ${maxDiff(merged, trained)}`);
      assert(maxDiff(merged, base) > 1e-4, "the adapter changed the scores");
      return merged;
    };

    let stageOne = "";
    let stageOneScores: number[] = [];
    await t.step("default (--lora-stage-two continue): both adapters are on the original base", async () => {
      await run([]);
      const nodes = await artifactsOf(`${dir}/run`);
      stageOne = nodes.get("sftkey-stage-one")!;
      const stageTwo = nodes.get("sftkey-stage-two")!;
      assertEquals(await baseOf(`${stageOne}/adapter`), `${dir}/base`);
      assertEquals(await baseOf(`${stageTwo}/adapter`), `${dir}/base`);
      stageOneScores = await mergesLikeScore(stageOne, `${dir}/base`, `${dir}/merged-one`);
      const two = await mergesLikeScore(stageTwo, `${dir}/base`, `${dir}/merged-two`);
      assert(maxDiff(two, stageOneScores) > 1e-5, "stage two trained the adapter further");
    });

    await t.step(
      "eval --adapter evaluates the base with the adapter as eval does the merged checkpoint",
      async () => {
        const evaluate = async (args: string[], runDir: string) => {
          await ok([
            "eval",
            ...args,
            ...["--data", `${dir}/test.jsonl`, "--format", "tags", ...QUICK],
            "--run-dir",
            runDir,
          ]);
          return (JSON.parse(await Deno.readTextFile(`${runDir}/summary.json`)) as {
            models: Record<string, Record<string, number>>;
          }).models.model;
        };
        const adapted = await evaluate(
          ["--model", `${dir}/base`, "--adapter", `${stageOne}/adapter`],
          `${dir}/e1`,
        );
        const merged = await evaluate(["--model", `${dir}/merged-one`], `${dir}/e2`);
        const plain = await evaluate(["--model", `${dir}/base`], `${dir}/e3`);
        assertEquals(adapted.n, 2);
        assertEquals([adapted.accuracy, adapted.format_rate], [merged.accuracy, merged.format_rate]);
        assert(
          Math.abs(adapted.key_loss - merged.key_loss) <= 1e-6,
          `${adapted.key_loss} vs ${merged.key_loss}`,
        );
        assert(Math.abs(adapted.key_loss - plain.key_loss) > 1e-5, "the adapter was applied");
      },
    );

    await t.step(
      "pipeline --adapter DIR --lora: training continues the adapter, on its base, with its r",
      async () => {
        await ok([
          "run",
          "sft",
          "--model",
          `${dir}/base`,
          "--adapter",
          `${stageOne}/adapter`,
          "--lora",
          ...dataArgs(dir),
          "--stage-one-steps",
          "1",
          "--stage-two-steps",
          "1",
          "--batch-size",
          "2",
          "--run-dir",
          `${dir}/from-adapter`,
        ]);
        const sft = (await artifactsOf(`${dir}/from-adapter`)).get("sft")!;
        assertEquals(await baseOf(`${sft}/adapter`), `${dir}/base`);
        const adapter = await Effect.runPromise(readAdapter(`${sft}/adapter`));
        assertEquals(adapter.settings.r, 4);
      },
    );

    await t.step("--lora-stage-two new: stage two's adapter is on stage one's merged model", async () => {
      await run(["--lora-stage-two", "new"]);
      const nodes = await artifactsOf(`${dir}/run`);
      assertEquals(nodes.get("sftkey-stage-one"), stageOne, "stage one is the cached one");
      const stageTwo = nodes.get("sftkey-stage-two")!;
      assertEquals(await baseOf(`${stageTwo}/adapter`), `${stageOne}/model`);
      const two = await mergesLikeScore(stageTwo, `${stageOne}/model`, `${dir}/merged-two-new`);
      assert(maxDiff(two, stageOneScores) > 1e-5, "stage two trained a new adapter");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
