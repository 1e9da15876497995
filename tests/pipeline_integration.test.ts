/**
 * End to end: the real sftkey pipeline (SFTKey's two stages and the SFT baseline) on a slice of the
 * embedded fixtures with a tiny budget, through the same entry points the CLI uses.
 *
 * - a first run runs every step and writes a schema-valid summary.json;
 * - a second run reports every step cached;
 * - changing only stage two's learning rate reruns stage two and its evaluation, nothing else;
 * - SIGKILL during stage-two training, then the same command: it resumes from the checkpoint and ends with
 *   weights bit-identical to an uninterrupted run (max |diff| = 0 <= 1e-6), and the same metrics.
 */
import { Effect, Schema } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { runAndSummarise } from "../src/cli/run.ts";
import { Summary } from "../src/report/summary.ts";
import { useBackend } from "../src/backend/backend.ts";
import { build } from "../pipelines/sftkey.ts";
import type { PipelineOptions } from "../pipelines/data.ts";

const root = new URL("..", import.meta.url).pathname;

const slice = async (dir: string, from: string, n: number) => {
  const lines = (await Deno.readTextFile(`${root}/fixtures/arith/${from}`)).split("\n").slice(0, n);
  await Deno.writeTextFile(`${dir}/${from}`, lines.join("\n") + "\n");
  return `${dir}/${from}`;
};

const tinyOptions = async (dir: string): Promise<PipelineOptions> => ({
  train: await slice(dir, "train.jsonl", 64),
  test: await slice(dir, "test.jsonl", 8),
  format: "tags",
  budget: {
    stageOneSteps: 4,
    stageTwoSteps: 6,
    train: { batchSize: 8, microBatchSize: 4, warmupSteps: 1, checkpointEvery: 2 },
  },
});

const quietly = <A>(f: () => Promise<A>): Promise<A> => {
  const log = console.log;
  console.log = () => {};
  return f().finally(() => (console.log = log));
};

const run = (opts: PipelineOptions, runDir: string) =>
  quietly(() =>
    Effect.runPromise(
      Effect.flatMap(
        useBackend("cpu"),
        (backend) => runAndSummarise(build(opts), { runDir, force: [], backend }),
      ),
    )
  );

const statusOf = (s: Summary) => Object.fromEntries(s.steps.map((x) => [x.name, x.status]));

Deno.test("pipeline: runs end to end, then every step is cached, then a stage-two change reruns only its part", async () => {
  const dir = await Deno.makeTempDir();
  const opts = await tinyOptions(dir);
  const first = await run(opts, `${dir}/run`);
  assert(Object.values(statusOf(first)).every((s) => s === "ran"), JSON.stringify(statusOf(first)));
  assertEquals(Object.keys(first.models).sort(), ["sft", "sftkey-stage-one", "sftkey-stage-two"]);
  for (const m of Object.values(first.models)) {
    assertEquals(m.n, 8);
    assert(m.accuracy >= 0 && m.accuracy <= 1 && Number.isFinite(m.key_loss));
  }
  // summary.json decodes with its schema.
  Schema.decodeUnknownSync(Summary)(JSON.parse(await Deno.readTextFile(`${dir}/run/summary.json`)));

  const second = await run(opts, `${dir}/run`);
  assert(Object.values(statusOf(second)).every((s) => s === "cached"), JSON.stringify(statusOf(second)));
  assertEquals(second.models, first.models);

  const changed = await run({ ...opts, budget: { ...opts.budget, stageTwoLr: 5e-4 } }, `${dir}/run`);
  const rerun = Object.entries(statusOf(changed)).filter(([, s]) => s !== "cached").map(([n]) => n).sort();
  assertEquals(rerun, ["eval-sftkey-stage-two", "sftkey-stage-two"]);
});

const cli = (args: string[]) =>
  new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}/src/cli/main.ts`, "run", ...args],
    stdout: "piped",
    stderr: "piped",
  });

const pipelineFile = async (dir: string) => {
  const opts = await tinyOptions(dir);
  const file = `${dir}/tiny.ts`;
  await Deno.writeTextFile(
    file,
    `import { build as sftkey } from "${root}/pipelines/sftkey.ts";\n` +
      `export const build = () => sftkey(${JSON.stringify(opts)});\n`,
  );
  return file;
};

/** True once stage one has finished and stage two (the second train node) has written a checkpoint. */
const stageTwoCheckpointed = async (runDir: string): Promise<boolean> => {
  const trainDir = `${runDir}/artifacts/train`;
  let finished = 0;
  let checkpointed = false;
  try {
    for await (const e of Deno.readDir(trainDir)) {
      if (!e.name.includes(".")) finished++;
      else if (e.name.endsWith(".partial")) {
        checkpointed ||= await Deno.stat(`${trainDir}/${e.name}/checkpoints/LATEST`).then(
          () => true,
          () => false,
        );
      }
    }
  } catch { /* nothing trained yet */ }
  return finished === 1 && checkpointed;
};

Deno.test({
  name: "pipeline: SIGKILL during stage two, rerun resumes and ends with bit-identical weights and metrics",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const file = await pipelineFile(dir);

    const reference = await cli([file, "--run-dir", `${dir}/reference`, "--backend", "cpu"]).output();
    assertEquals(reference.code, 0, new TextDecoder().decode(reference.stderr));

    const victim = cli([file, "--run-dir", `${dir}/killed`, "--backend", "cpu"]).spawn();
    let killed = false;
    for (let i = 0; i < 600 && !killed; i++) {
      await new Promise((r) => setTimeout(r, 50));
      if (await stageTwoCheckpointed(`${dir}/killed`)) {
        victim.kill("SIGKILL");
        killed = true;
      }
    }
    const status = await victim.status;
    assert(killed, "the run finished before a stage-two checkpoint appeared");
    assertEquals(status.signal, "SIGKILL");

    const resumed = await cli([file, "--run-dir", `${dir}/killed`, "--backend", "cpu"]).output();
    const out = new TextDecoder().decode(resumed.stdout);
    assertEquals(resumed.code, 0, new TextDecoder().decode(resumed.stderr));
    assert(/resum/.test(out), `expected the rerun to say it resumes:\n${out}`);

    const a = JSON.parse(await Deno.readTextFile(`${dir}/reference/summary.json`)) as Summary;
    const b = JSON.parse(await Deno.readTextFile(`${dir}/killed/summary.json`)) as Summary;
    assertEquals(b.models, a.models);
    const stage = (s: Summary) => s.steps.find((x) => x.name === "sftkey-stage-two")!;
    assertEquals(stage(b).status, "resumed");
    const weights = async (run: string, s: Summary) =>
      await Deno.readFile(`${dir}/${run}/artifacts/train/${stage(s).key}/model/model.safetensors`);
    assertEquals(await weights("killed", b), await weights("reference", a));
  },
});
