/**
 * Crash safety: the CLI is killed with SIGKILL at chosen moments of a real pipeline run (SFTKey's two
 * stages and the SFT baseline on a slice of the fixtures) and run again, as a user would after a crash.
 *
 * A kill point is an event plus a delay: a line of the run's own output ("[node] running step", "[node]
 * done in") or a training stage's k-th checkpoint appearing; the events come from an uninterrupted run, and the slow tier picks points with a
 * seeded generator, so a failure reproduces. After every kill the test checks that everything under a
 * final artifact name verifies against its manifest (a half-written artifact is never visible); after the
 * last rerun of a scenario, that
 *   - the rerun exits 0;
 *   - every artifact finished before the last kill is reported "cached", a training stage that had a
 *     checkpoint is "resumed", nothing was recomputed that was finished;
 *   - no .partial directory, temporary file or lock is left;
 *   - every trained model's weights are bit-equal to the reference run's, and the metrics equal.
 *
 * Default run: one scenario with three kills (tokenising, stage one after its first checkpoint, evaluation).
 * SFTKEY_SLOW=1: seeded scenarios adding up to at least 20 kills that landed.
 */
import { assert, assertEquals } from "./assert.ts";
import { verify } from "../src/engine/store.ts";
import { isTempFile, listFiles } from "../src/io/fs.ts";
import type { Summary } from "../src/report/summary.ts";

const root = new URL("..", import.meta.url).pathname;
const SLOW = Deno.env.get("SFTKEY_SLOW") === "1";

const slice = async (dir: string, from: string, n: number) => {
  const lines = (await Deno.readTextFile(`${root}/fixtures/arith/${from}`)).split("\n").slice(0, n);
  await Deno.writeTextFile(`${dir}/${from}`, lines.join("\n") + "\n");
  return `${dir}/${from}`;
};

/** A pipeline file: the shipped sftkey pipeline on 64 training rows, 8 test rows, a tiny budget. */
const pipelineFile = async (dir: string) => {
  const opts = {
    train: await slice(dir, "train.jsonl", 64),
    test: await slice(dir, "test.jsonl", 8),
    format: "tags",
    budget: {
      stageOneSteps: 6,
      stageTwoSteps: 6,
      train: { batchSize: 8, microBatchSize: 4, warmupSteps: 1, checkpointEvery: 2 },
    },
  };
  const file = `${dir}/tiny.ts`;
  await Deno.writeTextFile(
    file,
    `import { build as sftkey } from "${root}/pipelines/sftkey.ts";\n` +
      `export const build = () => sftkey(${JSON.stringify(opts)});\n`,
  );
  return file;
};

/** An event: the node's step starting ("running", or "resuming" for a resumed stage) or finishing. */
interface KillPoint {
  readonly event: string;
  readonly delayMs: number;
}

const matches = (line: string, event: string): boolean => {
  const [what, node] = event.split(":");
  if (!line.startsWith(`[${node}] `)) return false;
  const rest = line.slice(node.length + 3);
  return what === "running" ? /^(running|resuming) /.test(rest) : rest.startsWith("done in");
};

interface Attempt {
  readonly code: number;
  readonly killed: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Contents of every training stage's checkpoints/LATEST in the run directory. */
const latestCheckpoints = async (runDir: string): Promise<string[]> => {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${runDir}/artifacts/train`)) {
      const latest = await Deno.readTextFile(`${runDir}/artifacts/train/${e.name}/checkpoints/LATEST`)
        .catch(() => undefined);
      if (latest) out.push(`${e.name}/${latest}`);
    }
  } catch { /* nothing trained yet */ }
  return out;
};

/**
 * Runs the CLI; with a kill point, sends SIGKILL `delayMs` after the event. Events are lines of the run's
 * output, except `checkpoint:<node>:<k>`: the k-th checkpoint that stage writes (the file system is
 * polled once its "running"/"resuming" line has appeared).
 */
const attempt = async (file: string, runDir: string, kill?: KillPoint): Promise<Attempt> => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}/src/cli/main.ts`, "run", file, "--run-dir", runDir, "--backend", "cpu"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let stdout = "";
  let pending = "";
  let armed = false;
  let sent = false;
  let exited = false;
  const fire = () => {
    try {
      child.kill("SIGKILL");
      sent = true;
    } catch { /* already exited */ }
  };
  const watchCheckpoints = async (dir: string, nth: number, then: () => void) => {
    const seen = new Set(await latestCheckpoints(dir));
    let count = 0;
    while (!exited) {
      for (const c of await latestCheckpoints(dir)) {
        if (!seen.has(c)) {
          seen.add(c);
          if (++count === nth) return then();
        }
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!kill || armed) continue;
      const [what, node, nth] = kill.event.split(":");
      if (what === "checkpoint" && matches(line, `running:${node}`)) {
        armed = true;
        void watchCheckpoints(runDir, Number(nth), () => setTimeout(fire, kill.delayMs));
      } else if (matches(line, kill.event)) {
        armed = true;
        setTimeout(fire, kill.delayMs);
      }
    }
  }
  const status = await child.status;
  exited = true;
  return { code: status.code, killed: sent && status.signal === "SIGKILL", stdout, stderr: await stderr };
};

/** What a crash left: finished artifacts (each verified) and training stages with a checkpoint. */
interface Snapshot {
  readonly finished: Set<string>;
  readonly checkpointed: Set<string>;
  /** Working directories present at the kill, for the coverage report. */
  readonly partial: string[];
}

const snapshot = async (runDir: string): Promise<Snapshot> => {
  const finished = new Set<string>();
  const checkpointed = new Set<string>();
  const partial: string[] = [];
  const store = `${runDir}/artifacts`;
  const entries = async (dir: string) => {
    try {
      return await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return [];
    }
  };
  for (const step of await entries(store)) {
    for (const e of await entries(`${store}/${step.name}`)) {
      const dir = `${store}/${step.name}/${e.name}`;
      if (!e.name.includes(".")) {
        const check = await verify(dir);
        assert(typeof check !== "string", `after a kill, ${dir} is visible but does not verify: ${check}`);
        finished.add(`${step.name}/${e.name}`);
      } else if (e.name.endsWith(".partial")) {
        const key = e.name.slice(0, -".partial".length);
        const latest = await Deno.readTextFile(`${dir}/checkpoints/LATEST`).catch(() => undefined);
        if (latest) checkpointed.add(`${step.name}/${key}`);
        partial.push(`${step.name}${latest ? ` (${latest.trim()})` : ""}`);
      }
    }
  }
  return { finished, checkpointed, partial };
};

interface Reference {
  readonly summary: Summary;
  readonly events: string[];
  /** How long each node took in the reference run (ms), to spread kills over a step's whole length. */
  readonly durations: Map<string, number>;
  readonly weights: Map<string, Uint8Array>;
}

const weightsOf = async (runDir: string, s: Summary) => {
  const out = new Map<string, Uint8Array>();
  for (const step of s.steps.filter((x) => x.step === "train")) {
    out.set(step.name, await Deno.readFile(`${runDir}/artifacts/train/${step.key}/model/model.safetensors`));
  }
  return out;
};

const readSummary = async (runDir: string) =>
  JSON.parse(await Deno.readTextFile(`${runDir}/summary.json`)) as Summary;

const reference = async (file: string, dir: string): Promise<Reference> => {
  const run = await attempt(file, `${dir}/reference`);
  assertEquals(run.code, 0, run.stderr);
  const events = run.stdout.split("\n").flatMap((line) => {
    const m = /^\[([^\]]+)\] (running|done in)/.exec(line);
    return m ? [`${m[2] === "running" ? "running" : "done"}:${m[1]}`] : [];
  });
  const summary = await readSummary(`${dir}/reference`);
  const durations = new Map(summary.steps.map((s) => [s.name, s.seconds * 1000]));
  // Each stage checkpoints at steps 2 and 4 of 6: kill points right after each, in run order.
  const stages = summary.steps.filter((s) => s.step === "train").map((s) => s.name);
  events.splice(
    0,
    events.length,
    ...events.flatMap((e) =>
      stages.some((n) => e === `running:${n}`)
        ? [e, `checkpoint:${e.split(":")[1]}:1`, `checkpoint:${e.split(":")[1]}:2`]
        : [e]
    ),
  );
  return { summary, events, durations, weights: await weightsOf(`${dir}/reference`, summary) };
};

/**
 * How long after an event a kill may come: up to a little past the step's length in the reference run
 * (a rerun also spends time loading data and a checkpoint), at least a few ms for the quick steps.
 */
const maxDelay = (ref: Reference, event: string) => {
  const [what, node] = event.split(":");
  const ms = ref.durations.get(node) ?? 0;
  return what === "running" ? Math.max(15, 1.3 * ms) : what === "checkpoint" ? Math.max(15, ms / 4) : 15;
};

/** Runs one scenario: the kills in order (each on a rerun of what the previous left), then a clean rerun. */
const scenario = async (file: string, dir: string, ref: Reference, kills: ReadonlyArray<KillPoint>) => {
  const runDir = await Deno.makeTempDir({ dir, prefix: "killed-" });
  const landed: string[] = [];
  // Each kill's snapshot with the output of the attempt after it.
  const reruns: Array<{ before: Snapshot; stdout: string }> = [];
  let last: Snapshot | undefined;
  for (const kill of kills) {
    const run = await attempt(file, runDir, kill);
    assert(!/corrupt/.test(run.stdout), `a rerun after a kill found a corrupt artifact:\n${run.stdout}`);
    if (last) reruns.push({ before: last, stdout: run.stdout });
    if (!run.killed) {
      // The run finished before the kill came: it must have succeeded.
      assertEquals(run.code, 0, run.stderr);
      last = undefined;
      continue;
    }
    last = await snapshot(runDir);
    landed.push(`${kill.event}+${kill.delayMs}ms [${last.partial.join(", ") || "between steps"}]`);
  }
  const final = await attempt(file, runDir);
  assertEquals(final.code, 0, `the rerun failed:\n${final.stderr}\n${final.stdout}`);
  assert(!/corrupt/.test(final.stdout), final.stdout);
  if (last) reruns.push({ before: last, stdout: final.stdout });

  // Every rerun reuses what the kill before it left: finished nodes are cached, checkpointed stages resume
  // (as far as the rerun got before its own kill). Keys come from this run's summary: a stage's key
  // depends on the digest of the stage before it, which differs between runs (it records timings).
  const summary = await readSummary(runDir);
  for (const { before, stdout } of reruns) {
    for (const s of summary.steps) {
      const id = `${s.step}/${s.key}`;
      const lines = stdout.split("\n").filter((l) => l.startsWith(`[${s.name}] `));
      if (lines.length === 0) continue;
      if (before.finished.has(id)) assert(/ cached /.test(lines[0]), `${s.name} was finished: ${lines[0]}`);
      else if (before.checkpointed.has(id)) assert(/ resuming /.test(lines[0]), `${s.name}: ${lines[0]}`);
    }
  }
  for (const s of summary.steps) {
    const id = `${s.step}/${s.key}`;
    if (last?.finished.has(id)) assertEquals(s.status, "cached", `${s.name} was finished before the kill`);
    else if (last?.checkpointed.has(id)) assertEquals(s.status, "resumed", `${s.name} had a checkpoint`);
  }
  assertEquals(summary.models, ref.summary.models);
  const weights = await weightsOf(runDir, summary);
  assertEquals([...weights.keys()].sort(), [...ref.weights.keys()].sort());
  for (const [name, bytes] of weights) {
    assert(bytesEqual(bytes, ref.weights.get(name)!), `weights of ${name} differ from the reference run`);
  }
  const leftovers = (await listFiles(runDir)).filter((f) =>
    f.includes(".partial/") || isTempFile(f) || f === ".lock" || /\.old-/.test(f)
  );
  assertEquals(leftovers, []);
  for (const s of summary.steps) {
    const check = await verify(`${runDir}/artifacts/${s.step}/${s.key}`);
    assert(typeof check !== "string", `${s.name}: ${check}`);
  }
  await Deno.remove(runDir, { recursive: true });
  return landed;
};

const bytesEqual = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** mulberry32: a small seeded generator, so the slow tier's kill points reproduce. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

Deno.test("kill harness: SIGKILL while tokenising, in stage one and evaluating; reruns resume", async () => {
  const dir = await Deno.makeTempDir();
  const file = await pipelineFile(dir);
  const ref = await reference(file, dir);
  const landed = await scenario(file, dir, ref, [
    { event: "running:train-tokens", delayMs: 2 },
    // Right after stage one's first checkpoint: the rerun must resume, not restart.
    { event: "checkpoint:sftkey-stage-one:1", delayMs: 0 },
    { event: "running:eval-sftkey-stage-one", delayMs: 5 },
  ]);
  console.log(`kill points that landed:\n  ${landed.join("\n  ")}`);
  assert(landed.length >= 2, `too few kills landed: ${landed.join("; ")}`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "kill harness (slow): at least 20 seeded kill points, every rerun completes with identical weights",
  ignore: !SLOW,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const file = await pipelineFile(dir);
    const ref = await reference(file, dir);
    const random = seeded(20261123);
    const landed: string[] = [];
    for (let s = 0; s < 30 && landed.length < 20; s++) {
      // One to three kills per scenario, at increasing positions in the run, so later kills hit reruns.
      const n = 1 + Math.floor(random() * 3);
      const positions = Array.from({ length: n }, () => Math.floor(random() * ref.events.length))
        .sort((a, b) => a - b);
      const kills = positions.map((i) => {
        const event = ref.events[i];
        return { event, delayMs: Math.floor(random() * maxDelay(ref, event)) };
      });
      landed.push(...await scenario(file, dir, ref, kills));
    }
    console.log(`kill points that landed (${landed.length}):\n  ${landed.join("\n  ")}`);
    assert(landed.length >= 20, `only ${landed.length} kills landed`);
    // The points must include kills inside training after a checkpoint, the case resuming exists for.
    assert(landed.some((l) => l.includes("(step-")), "no kill landed after a training checkpoint");
    await Deno.remove(dir, { recursive: true });
  },
});
