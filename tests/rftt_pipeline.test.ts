/**
 * `rftt --quick` through the pipeline runner, on a slice of the fixtures with a tiny budget: every arm
 * (rftt-sft, rftt, rftt-prm, rftt-sampling, cot-sft, cot-rl) is trained and evaluated; the RL steps write
 * their per-update log; the RFTT checkpoints are valid Hugging Face checkpoints (config.json's vocab_size
 * matches the embedding rows, tokenizer.json lists the 16 functional tokens as special added tokens); the
 * RL charts and the test-time scaling chart (tree search at inference) are published; a rerun is all cached.
 */
import { Effect } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { useBackend } from "../src/backend/backend.ts";
import { runAndSummarise } from "../src/cli/run.ts";
import { FUNCTIONAL_TOKENS, parseTrace } from "../src/data/functional_tokens.ts";
import { build, RFTT_ARMS } from "../pipelines/rftt.ts";
import { cli } from "./bad_input_cases.ts";

const root = new URL("..", import.meta.url).pathname;

const slice = async (dir: string, from: string, n: number) => {
  const lines = (await Deno.readTextFile(`${root}/fixtures/arith/${from}`)).split("\n").slice(0, n);
  await Deno.writeTextFile(`${dir}/${from}`, lines.join("\n") + "\n");
  return `${dir}/${from}`;
};

/** The shape of a tensor in a safetensors file (from its JSON header). */
const shapeOf = async (path: string, tensor: string): Promise<number[]> => {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.slice(8, 8 + n)))[tensor].shape;
};

Deno.test("rftt --quick: every arm trains and is evaluated; RL logs; valid HF checkpoints; rerun cached", async () => {
  const dir = await Deno.makeTempDir();
  const pipeline = build({
    train: await slice(dir, "train.jsonl", 40),
    test: await slice(dir, "test.jsonl", 6),
    format: "tags",
    quick: true,
    budget: {
      stageOneSteps: 3,
      stageTwoSteps: 1,
      train: { batchSize: 8, microBatchSize: 8, warmupSteps: 1 },
    },
  });
  const run = async () => {
    const log = console.log;
    console.log = () => {};
    try {
      return await Effect.runPromise(
        Effect.flatMap(
          useBackend("cpu"),
          (backend) => runAndSummarise(pipeline, { runDir: `${dir}/run`, force: [], backend }),
        ),
      );
    } finally {
      console.log = log;
    }
  };
  const summary = await run();
  assertEquals(
    Object.keys(summary.models).sort(),
    [...Object.keys(RFTT_ARMS), "vote-rftt-sft", "vote-rftt"].sort(),
  );
  assert(summary.steps.every((s) => s.status === "ran"), JSON.stringify(summary.steps));
  const artifact = (name: string) => {
    const s = summary.steps.find((s) => s.name === name)!;
    return `${dir}/run/artifacts/${s.step}/${s.key}`;
  };

  for (const arm of ["rftt", "rftt-prm", "rftt-sampling", "cot-rl"]) {
    const rows = (await Deno.readTextFile(`${artifact(arm)}/rl_log.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEquals(rows.map((r) => r.update), [1, 2], arm);
    for (const r of rows) {
      for (
        const k of ["reward", "accuracy", "kl", "length", "clipFraction", "outputShare", "loss", "gradNorm"]
      ) {
        assert(Number.isFinite(r[k]), `${arm} ${k}: ${r[k]}`);
      }
      assert(typeof r.functionalTokens === "object", arm);
    }
  }
  // Sampled rollouts are whole responses: their length is positive.
  const sampling = JSON.parse(
    (await Deno.readTextFile(`${artifact("rftt-sampling")}/rl_log.jsonl`)).split("\n")[0],
  );
  assert(sampling.length > 0 && sampling.rollouts === 4, JSON.stringify(sampling));

  // Valid Hugging Face checkpoints: 324 + 16 rows, and the tokens as special added tokens.
  for (const name of ["rftt-sft", "rftt", "rftt-sampling"]) {
    const model = `${artifact(name)}/model`;
    const config = JSON.parse(await Deno.readTextFile(`${model}/config.json`));
    assertEquals(config.vocab_size, 340, name);
    assertEquals((await shapeOf(`${model}/model.safetensors`, "model.embed_tokens.weight"))[0], 340, name);
    const added = JSON.parse(await Deno.readTextFile(`${model}/tokenizer.json`)).added_tokens as Array<
      { content: string; special: boolean }
    >;
    for (const t of FUNCTIONAL_TOKENS) {
      assert(added.some((a) => a.content === t && a.special), `${name}: ${t}`);
    }
  }
  // The RL charts are published into the run directory.
  const svg = await Deno.readTextFile(`${dir}/run/rl_curves.svg`);
  for (const text of ["mean reward", "KL to reference", "clip fraction", "rftt-sampling", "cot-rl"]) {
    assert(svg.includes(text.replace("<", "&lt;")), text);
  }
  // Test-time scaling: tree search at inference, majority votes over its first 1, 2, 4, 8 rollouts, charted.
  for (const label of ["rftt-sft", "rftt"]) {
    const metrics = JSON.parse(await Deno.readTextFile(`${artifact(`vote-${label}`)}/metrics.json`));
    assertEquals(metrics.rollouts, 8, label);
    assertEquals(Object.keys(metrics.majority_at), ["1", "2", "4", "8"], label);
    assertEquals(metrics.majority_at["8"], metrics.majority_accuracy, label);
    assertEquals(metrics.accuracy, metrics.majority_accuracy, label);
    // Every rollout is a functional-token trace; one that gave an answer parses under the grammar.
    const predictions = (await Deno.readTextFile(`${artifact(`vote-${label}`)}/predictions.jsonl`)).trim()
      .split("\n").map((l) => JSON.parse(l));
    for (const p of predictions) {
      assertEquals(p.rollouts.length, 8, label);
      for (const r of p.rollouts) if (r.predicted !== null) assert(parseTrace(r.generated).ok, r.generated);
    }
  }
  assert((await Deno.readTextFile(`${dir}/run/scaling.svg`)).includes("majority-vote accuracy"));

  // `deno task eval --rollouts N` runs the same search on any RFTT checkpoint: the vote of the first N
  // rollouts of the pipeline's own tree (same seed, same step settings).
  const evalArgs = (model: string, out: string) => [
    "eval",
    "--model",
    model,
    "--data",
    `${dir}/test.jsonl`,
    "--format",
    "tags",
    "--max-new-tokens",
    "176",
    "--rollouts",
    "4",
    "--backend",
    "cpu",
    "--run-dir",
    `${dir}/${out}`,
  ];
  const searched = await cli(evalArgs(`${artifact("rftt")}/model`, "e-rftt"));
  assertEquals(searched.code, 0, searched.stderr);
  const m = JSON.parse(await Deno.readTextFile(`${dir}/e-rftt/summary.json`)).models.model;
  const voted = JSON.parse(await Deno.readTextFile(`${artifact("vote-rftt")}/metrics.json`));
  assertEquals(m.rollouts, 4);
  assertEquals(m.majority_at["4"], voted.majority_at["4"]);
  // A chain-of-thought model has no functional tokens to search with: a one-line typed error.
  const refused = await cli(evalArgs(`${artifact("cot-sft")}/model`, "e-cot"));
  assertEquals(refused.code, 1, refused.stdout);
  assert(
    refused.stderr.includes("no functional tokens") && !refused.stderr.includes("    at "),
    refused.stderr,
  );
  const rerun = await run();
  assert(rerun.steps.every((s) => s.status === "cached"), JSON.stringify(rerun.steps));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cot-rl reads a plain rollout's answer where evaluation does: #### for gsm8k, <Answer> for tags", () => {
  const locatorOf = (format: "tags" | "gsm8k", train: string, test: string) => {
    const node = build({ train, test, format }).nodes.find((n) => n.name === "cot-rl");
    assert(node !== undefined && node.kind === "step");
    return (node.config as { locator?: { kind: string } }).locator;
  };
  // Without it every GSM8K-format reward was 0 (the rl step's default reads <Answer> tags).
  assertEquals(
    locatorOf("gsm8k", "fixtures/gsm8k-mini/train.jsonl", "fixtures/gsm8k-mini/test.jsonl")?.kind,
    "gsm8k",
  );
  // The tags format keeps the step's default (and so its cache key).
  assertEquals(locatorOf("tags", "fixtures/arith/train.jsonl", "fixtures/arith/test.jsonl"), undefined);
});
