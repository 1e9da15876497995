/**
 * The rl step is resumable like train: a run interrupted after its update-2 checkpoint and rerun ends with
 * the weights (bytes) of an uninterrupted run, and its log is the same; the weights did move from the
 * starting checkpoint (so the comparison is not of two untouched models). Settings that cannot work
 * together are InvalidConfig before any rollout.
 *
 * Tiny fresh model, plain sampled rollouts on arithmetic prompts; the answer is the last digit written (a
 * random model writes the gold one now and then, so rewards vary and updates do something).
 */
import { Effect, Exit } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { runPipeline } from "../src/engine/runner.ts";
import { ArtifactStore } from "../src/engine/store.ts";
import { type Reporter, silentReporter } from "../src/engine/progress.ts";
import { crashingAt } from "./engine_test_helpers.ts";
import { useBackend } from "../src/backend/backend.ts";
import { describeError } from "../src/errors.ts";
import { locateKeyStep } from "../src/steps/locate_key.ts";
import { RL_STEP_DEFAULTS, type RlConfig, rlStep } from "../src/steps/rl.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import { Rng } from "../src/util/rng.ts";
import { tinyModel, tokenizerVocabSize } from "../pipelines/data.ts";

const root = new URL("..", import.meta.url).pathname;
const tokenizer = `${root}/fixtures/arith/tokenizer.json`;

const RL: RlConfig = {
  ...RL_STEP_DEFAULTS,
  updates: 4,
  promptsPerUpdate: 2,
  rolloutsPerPrompt: 4,
  rollout: "sampling",
  traces: "plain",
  reward: "outcome",
  template: "{prompt}\n",
  locator: { kind: "regex", pattern: "(\\d)\\D*$" },
  maxNewTokens: 12,
  maxStepTokens: 8,
  maxDepth: 4,
  lr: 1e-2,
  checkpointEvery: 2,
  seed: 0,
};

const pipeline = (dir: string, config: RlConfig) => {
  const p = new PipelineBuilder("rl-only");
  const keys = p.add("keys", locateKeyStep, { format: "tags", onMissingKey: "fail" }, {
    data: p.source("data", `${dir}/train.jsonl`),
  });
  p.add("rl", rlStep, config, {
    model: p.source("model", `${dir}/init`),
    data: keys,
    tokenizer: p.source("tokenizer", tokenizer),
  });
  return p.build();
};

const run = async (dir: string, reporter: Reporter, config = RL) => {
  const backend = await Effect.runPromise(useBackend("cpu"));
  return await Effect.runPromise(runPipeline(pipeline(dir, config), {
    store: new ArtifactStore(`${dir}/artifacts`),
    reporter,
    backend,
  }));
};

const setup = async () => {
  const dir = await Deno.makeTempDir();
  const lines = (await Deno.readTextFile(`${root}/fixtures/arith/train.jsonl`)).split("\n").slice(0, 8);
  await Deno.writeTextFile(`${dir}/train.jsonl`, lines.join("\n") + "\n");
  const config = { ...tinyModel(tokenizerVocabSize(tokenizer), 64), hiddenSize: 32, intermediateSize: 64 };
  const params = initParams(config, Rng.seeded(1));
  await Effect.runPromise(saveCheckpoint(`${dir}/init`, config, params));
  disposeParams(params);
  return dir;
};

const bytesEqual = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

Deno.test("rl step: an interrupted run resumes to the weights and log of an uninterrupted one", async () => {
  const whole = await setup();
  const full = await run(whole, silentReporter());
  const fullDir = full.outputs.get("rl")!;
  const fullWeights = await Deno.readFile(`${fullDir}/model/model.safetensors`);
  assert(
    !bytesEqual(fullWeights, await Deno.readFile(`${whole}/init/model.safetensors`)),
    "the updates left the weights untouched",
  );
  const log = (await Deno.readTextFile(`${fullDir}/rl_log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assertEquals(log.length, 4);
  assert(log.some((r) => r.gradNorm > 0), JSON.stringify(log));

  const dir = await setup();
  let crashed = false;
  await run(dir, crashingAt(3)).catch(() => (crashed = true));
  assert(crashed, "the simulated crash did not happen");
  const partials = (await Array.fromAsync(Deno.readDir(`${dir}/artifacts/rl`))).map((e) => e.name);
  assertEquals(partials.length, 1);
  assertEquals(
    (await Deno.readTextFile(`${dir}/artifacts/rl/${partials[0]}/checkpoints/LATEST`)).trim(),
    "step-0000002",
  );
  const lines: string[] = [];
  const resumed = await run(dir, silentReporter(lines));
  assertEquals(resumed.records.find((r) => r.name === "rl")!.status, "resumed");
  assert(lines.some((l) => l.includes("resuming at update 2/4")), lines.join("\n"));
  const out = resumed.outputs.get("rl")!;
  assert(bytesEqual(await Deno.readFile(`${out}/model/model.safetensors`), fullWeights), "weights differ");
  assertEquals(
    await Deno.readTextFile(`${out}/rl_log.jsonl`),
    await Deno.readTextFile(`${fullDir}/rl_log.jsonl`),
  );
  await Deno.remove(whole, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("rl step: tree search over plain traces is an InvalidConfig", async () => {
  const dir = await setup();
  const exit = await Effect.runPromiseExit(
    Effect.gen(function* () {
      const backend = yield* useBackend("cpu");
      return yield* runPipeline(pipeline(dir, { ...RL, rollout: "mcts" }), {
        store: new ArtifactStore(`${dir}/artifacts`),
        reporter: silentReporter(),
        backend,
      });
    }),
  );
  assert(Exit.isFailure(exit) && exit.cause._tag === "Fail", String(exit));
  const e = exit.cause.error;
  assert(e._tag === "StepFailed" && e.node === "rl", String(e));
  if (e._tag === "StepFailed") {
    assertEquals(e.error._tag, "InvalidConfig");
    assert(/functional traces/.test(describeError(e.error)), describeError(e.error));
  }
  await Deno.remove(dir, { recursive: true });
});
