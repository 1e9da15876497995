/**
 * The command line as a user types it, through the launcher the tasks start (src/cli/launch.ts):
 * - `--help` shows the task (`deno task pipeline`), optional flags in brackets, and what each value is
 *   (FILE, DIR, N and its default) instead of @effect/cli's generic type lines;
 * - `generate` and `score` take `--backend`;
 * - killing the launcher alone with SIGKILL stops the run within a second and frees its run lock;
 * - `deno task pipeline` with no pipeline name fine-tunes the shipped base (the default pipeline).
 * (Typed one-line errors for mistakes on the command line: tests/bad_input_cases.ts.)
 */
import { helps } from "../src/cli/main.ts";
import { nodeGpuBinding } from "../src/backend/gpu_binding.ts";
import { assert, assertEquals } from "./assert.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const LAUNCHER = [
  "run",
  "--no-prompt",
  "--allow-read",
  "--allow-env",
  "--allow-run",
  `${root}/src/cli/launch.ts`,
];

const cli = async (args: string[]) => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...LAUNCHER, ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr).trim() };
};

Deno.test("help: deno task pipeline --help shows the task, optional flags as optional, and what each value is", async () => {
  const r = await cli(["run", "--help"]);
  assertEquals(r.code, 0, r.stderr);
  const usage = r.stdout.slice(0, r.stdout.indexOf("DESCRIPTION")).replace(/\s+/g, " ");
  assert(usage.startsWith("USAGE deno task pipeline [<pipeline>] [--data FILE] [--test FILE]"), usage);
  for (
    const part of [
      "[--tokenizer FILE|DIR]",
      "[--model DIR]",
      "[--run-dir DIR]",
      "[--seed N]",
      "[--force STEP...]",
    ]
  ) {
    assert(usage.includes(part), `usage lacks ${part}: ${usage}`);
  }
  // Every flag of the usage is optional: nothing outside brackets but the task and the words in them.
  assertEquals(usage.replace(/\[[^\]]*\]/g, "").trim().split(/\s+/), ["USAGE", "deno", "task", "pipeline"]);
  assert(!r.stdout.includes("$ run") && !r.stdout.includes("A user-defined piece of text"), r.stdout);
  assert(r.stdout.includes("training seed (default 0)"), r.stdout);
  assert(r.stdout.includes("optimizer steps of stage one (default 400"), r.stdout);
});

Deno.test("deno task pipeline without a name fine-tunes the shipped base on the word problems (--quick)", async () => {
  const runDir = await Deno.makeTempDir();
  const r = await cli(["run", "--quick", "--run-dir", runDir]);
  assertEquals(r.code, 0, r.stderr);
  assert(r.stdout.includes("pipeline sftkey-finetune:"), r.stdout);
  assert(r.stdout.includes("budget: fine-tuning defaults: started from a checkpoint"), r.stdout);
  const summary = JSON.parse(await Deno.readTextFile(`${runDir}/summary.json`)) as {
    pipeline: string;
    settings: { budget: string };
    models: Record<string, { n: number }>;
  };
  assertEquals(summary.pipeline, "sftkey-finetune");
  assert(summary.settings.budget.startsWith("fine-tuning defaults"), summary.settings.budget);
  assertEquals(Object.keys(summary.models).sort(), ["sft", "sftkey-stage-one", "sftkey-stage-two"]);
  // The quick slice of the word problems' test set, evaluated by every model.
  assert(Object.values(summary.models).every((m) => m.n === 10), JSON.stringify(summary.models));
  // Training started from the shipped base: its first stage's checkpoint has the base's shape.
  const one = (await Array.fromAsync(Deno.readDir(`${runDir}/artifacts/train`))).map((e) => e.name);
  const shapes = await Promise.all(
    one.map(async (k) =>
      JSON.parse(await Deno.readTextFile(`${runDir}/artifacts/train/${k}/model/config.json`))
    ),
  );
  const base = JSON.parse(await Deno.readTextFile(`${root}/fixtures/base/config.json`));
  assert(
    shapes.length === 3 && shapes.every((c) => c.hidden_size === base.hidden_size),
    JSON.stringify(shapes),
  );
  await Deno.remove(runDir, { recursive: true });
});

Deno.test("help: status, export, generate and score show their task and placeholders", () => {
  const usage = (word: string) => {
    const text = helps[word]();
    assert(!/A user-defined piece of text|An integer\.|A file\./.test(text), text);
    return text.slice(0, text.indexOf("DESCRIPTION")).replace(/\s+/g, " ");
  };
  assert(usage("status").startsWith("USAGE deno task status [<pipeline>] [--data FILE]"), usage("status"));
  assert(usage("export").includes(" --out DIR"), usage("export"));
  const generate = usage("generate");
  assert(generate.startsWith("USAGE deno task generate --model DIR [--prompt TEXT] [--ids IDS]"), generate);
  assert(
    generate.includes("[--stop TEXT...]") &&
      generate.includes("[--backend auto | tensorflow | cpu-blas | cpu | webgpu]"),
  );
  const score = usage("score");
  assert(score.startsWith("USAGE deno task score --model DIR [--text TEXT]"), score);
  assert(score.includes("[--backend auto | tensorflow | cpu-blas | cpu | webgpu]"), score);
});

Deno.test("generate and score take --backend: cpu generates; an absent backend is one typed line", async () => {
  const model = ["--model", `${root}/fixtures/goldens/llama`, "--ids", "1,2,3"];
  const r = await cli(["generate", ...model, "--max-new-tokens", "4", "--json", "--backend", "cpu"]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(JSON.parse(r.stdout).ids.length, 4);
  if (nodeGpuBinding() === undefined) {
    // Without tfjs-node-gpu installed, asking for it is refused by name (where it is installed, it works).
    const r = await cli(["score", ...model, "--backend", "tensorflow"]);
    assertEquals(r.code, 1);
    assert(
      /^error: backend "tensorflow" is not available: /.test(r.stderr) && !r.stderr.includes("\n"),
      r.stderr,
    );
  } else {
    const r = await cli(["score", ...model, "--json", "--backend", "tensorflow"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(JSON.parse(r.stdout).tokens.map((t: { id: number }) => t.id), [1, 2, 3]);
  }
});

/** Whether a process is still running (a zombie, dead but not yet reaped, counts as gone). */
/**
 * Whether `pid` runs (a zombie does not): asked of `ps`, since the test task's scoped permissions refuse
 * reads under /proc (Deno counts them as privileged), which read as "not running".
 */
const alive = (pid: number) => {
  const out = new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)], stdout: "piped" })
    .outputSync();
  const stat = new TextDecoder().decode(out.stdout).trim();
  return out.success && stat !== "" && !stat.startsWith("Z");
};

Deno.test({
  name: "kill -9 of the launcher alone stops the run within a second and frees the run lock",
  ignore: Deno.build.os !== "linux", // asks ps whether the child is alive
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "launcher-kill-" });
    const runDir = `${dir}/run`;
    const launcher = new Deno.Command(Deno.execPath(), {
      // A stage one far longer than the test: the run must still be training when it is killed (a quick run
      // can finish between the "running train" line and the lock read).
      args: [...LAUNCHER, "run", "--quick", "--stage-one-steps", "100000", "--run-dir", runDir],
      cwd: root,
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).spawn();
    let drained: Promise<void> = Promise.resolve();
    try {
      // Wait until training runs: the child's JavaScript thread is busy for seconds at a time then.
      const reader = launcher.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!seen.includes("running train")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the run ended before training:\n${seen}`);
        seen += value;
      }
      // Keep draining stdout: a closed pipe would kill the launcher with EPIPE on its next progress line, and
      // the reaper would then stop main.ts before this test kills anything.
      drained = (async () => {
        try {
          while (!(await reader.read()).done) { /* discard */ }
        } catch { /* the launcher is gone */ }
      })();
      // The run lock holds the pid of its owner, main.ts in the launcher's child.
      const child = parseInt(await Deno.readTextFile(`${runDir}/.lock`), 10);
      assert(child !== launcher.pid && alive(child), `lock holder ${child}`);
      launcher.kill("SIGKILL");
      await launcher.status;
      const killed = performance.now();
      while (alive(child) && performance.now() - killed < 1000) await new Promise((r) => setTimeout(r, 20));
      assert(!alive(child), `main.ts (pid ${child}) still runs 1s after its launcher was killed`);
      // A second run can take the lock.
      const code = `import { Effect } from "effect";
import { lockRunDir } from "${root}/src/engine/lock.ts";
await Effect.runPromise(Effect.scoped(lockRunDir(${JSON.stringify(runDir)})));
console.log("locked");`;
      const second = await new Deno.Command(Deno.execPath(), {
        args: ["eval", code],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(
        new TextDecoder().decode(second.stdout).trim(),
        "locked",
        new TextDecoder().decode(second.stderr),
      );
    } finally {
      try {
        launcher.kill("SIGKILL");
      } catch { /* already gone */ }
      await launcher.status;
      await drained;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
