/**
 * Least privilege: a pipeline run started the way the `pipeline` task starts it (its exact command, read from
 * deno.json: the launcher src/cli/launch.ts, which runs src/cli/main.ts in a child with scoped permissions)
 * cannot reach the network (a model hub or anything else), start a process, load a native library outside
 * the OpenBLAS scope, read outside the project and the paths it was given, or write outside its run
 * directory; and it is never prompted: each attempt fails at once with Deno's permission error. The probe is
 * a user pipeline file, the code a run executes with the most freedom. Also: the scopes the launcher
 * computes for the other commands and backends.
 */
import { assert, assertEquals } from "./assert.ts";
import { absolutePaths, denoFlags, scopesFor } from "../src/cli/launch.ts";
import { BLAS_CANDIDATES } from "../src/backend/blas.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The `pipeline` task's words after "deno": run, the launcher's flags, the launcher, the command. */
const taskWords = async (): Promise<string[]> => {
  const task: string = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)).tasks.pipeline;
  const words = task.split(/\s+/);
  assertEquals(words[0], "deno");
  assertEquals(words.slice(-2), ["src/cli/launch.ts", "run"]);
  return words.slice(1);
};

Deno.test("permissions: a pipeline run cannot use the network, start processes, load libraries, or touch other files", async () => {
  const words = await taskWords();
  assert(!words.some((f) => /^--allow-(net|all|write|ffi)|^-A$/.test(f)), words.join(" "));
  const dir = await Deno.makeTempDir();
  const runDir = `${dir}/run`;
  const out = `${runDir}/probe.json`;
  await Deno.writeTextFile(`${dir}/secret.txt`, "not for the run");
  await Deno.writeTextFile(
    `${dir}/probe.ts`,
    `const results: Record<string, string> = {};
const probe = async (name: string, f: () => Promise<unknown> | unknown) => {
  try {
    await f();
    results[name] = "allowed";
  } catch (e) {
    results[name] = e instanceof Error ? \`\${e.name}: \${e.message}\` : String(e);
  }
};
await probe("fetch a hub", () => fetch("https://huggingface.co/api/models"));
await probe("fetch localhost", () => fetch("http://127.0.0.1:8/"));
await probe("connect", () => Deno.connect({ hostname: "127.0.0.1", port: 8 }));
await probe("resolve a name", () => Deno.resolveDns("huggingface.co", "A"));
await probe("start a process", () => new Deno.Command("true").output());
await probe("load libc", () => Deno.dlopen("libc.so.6", {}));
await probe("read outside", () => Deno.readTextFile("/etc/hostname"));
await probe("write outside the run directory", () => Deno.writeTextFile(${
      JSON.stringify(`${dir}/x.txt`)
    }, "x"));
await probe("read the project", () => Deno.readTextFile(${JSON.stringify(`${root}/README.md`)}));
await probe("read beside the pipeline file", () => Deno.readTextFile(${JSON.stringify(`${dir}/secret.txt`)}));
await Deno.mkdir(${JSON.stringify(runDir)}, { recursive: true });
await Deno.writeTextFile(${JSON.stringify(out)}, JSON.stringify(results));
export const build = () => {
  throw new Error("probe only");
};
`,
  );
  const run = await new Deno.Command(Deno.execPath(), {
    args: [...words, `${dir}/probe.ts`, "--run-dir", runDir],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    // A terminal on stdin would let Deno ask for missing permissions; --no-prompt must refuse instead.
    stdin: "null",
  }).output();
  assertEquals(run.code, 1, new TextDecoder().decode(run.stderr));
  const results: Record<string, string> = JSON.parse(await Deno.readTextFile(out));
  const denied = [
    "fetch a hub",
    "fetch localhost",
    "connect",
    "resolve a name",
    "start a process",
    "load libc",
  ];
  for (const what of denied) {
    assert(/^NotCapable: Requires (net|run|ffi) access/.test(results[what]), `${what}: ${results[what]}`);
  }
  assert(/^NotCapable: Requires read access/.test(results["read outside"]), results["read outside"]);
  assert(/^NotCapable: Requires write access/.test(results["write outside the run directory"]));
  assertEquals(results["read the project"], "allowed");
  assertEquals(results["read beside the pipeline file"], "allowed");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("permissions: the launcher grants each command only the paths and libraries it names", () => {
  const cwd = root;
  const run = scopesFor(
    "run",
    ["sftkey", "--data", "/d/x/train.jsonl", "--model", "/m", "--run-dir", "r/1"],
    cwd,
  );
  assertEquals(run.write, [`${root}/r/1`]);
  for (const p of [root, "/d/x/train.jsonl", "/m", `${root}/r/1`]) assert(run.read.includes(p), `read ${p}`);
  assert(!run.read.includes("/d/x") && !run.read.includes("/"), run.read.join(" "));
  const tok = scopesFor("run", ["--tokenizer", "/t/tokenizer.json"], cwd).read;
  assert(
    tok.includes("/t/tokenizer.json") && tok.includes("/t/tokenizer_config.json") && !tok.includes("/t"),
  );
  // Every file the BLAS loader may open (tfjs-node-gpu's binding too, where it is installed).
  for (const lib of BLAS_CANDIDATES) assert(run.ffi.includes(lib), `ffi ${lib}`);
  // --jobs above 1 on cpu-blas: also the workers' copies of the library, in the launcher's directory for
  // them, which the run may read and load from but not write to; never the run directory.
  const copies = "/tmp/sftkey-blas-1";
  assertEquals(run.blasCopies, undefined);
  const jobs = scopesFor("run", ["sftkey", "--run-dir", "r/1", "--jobs", "2"], cwd, undefined, copies);
  assertEquals(jobs.blasCopies, { dir: copies, count: 2 });
  assert(jobs.ffi.includes(copies) && jobs.read.includes(copies) && !jobs.ffi.includes(`${root}/r/1`));
  assert(denoFlags(jobs).includes(`--deny-write=${copies}`), denoFlags(jobs).join(" "));
  assertEquals(scopesFor("run", ["--jobs=3"], cwd, undefined, copies).blasCopies?.count, 3);
  assertEquals(
    scopesFor("run", ["--jobs", "2", "--backend", "cpu"], cwd, undefined, copies).blasCopies,
    undefined,
  );
  assertEquals(scopesFor("status", ["--jobs", "2"], cwd, undefined, copies).blasCopies, undefined);
  // The plain cpu backend loads no library; nor do status, generate and score.
  assertEquals(scopesFor("run", ["--backend", "cpu"], cwd).ffi, []);
  assertEquals(scopesFor("status", [], cwd).ffi, []);
  assert(scopesFor("generate", ["--model", "/m", "--ids", "1,2"], cwd).ffi.includes(BLAS_CANDIDATES[0]));
  // generate and score take --backend too: cpu loads no library, cpu-blas the BLAS files.
  assertEquals(scopesFor("generate", ["--model", "/m", "--backend", "cpu"], cwd).ffi, []);
  assertEquals(scopesFor("score", ["--model", "/m", "--backend=cpu"], cwd).ffi, []);
  assert(
    scopesFor("score", ["--model", "/m", "--backend", "cpu-blas"], cwd).ffi.includes(BLAS_CANDIDATES[0]),
  );
  assertEquals(scopesFor("generate", ["--model=/m"], cwd).write, []);
  assert(scopesFor("score", ["--model=/m"], cwd).read.includes("/m"));
  // webgpu: Deno's WebGPU flag for the commands that compute with it, no library, and nothing for the rest.
  const gpu = scopesFor("run", ["--backend", "webgpu"], cwd);
  assertEquals([gpu.ffi, denoFlags(gpu).includes("--unstable-webgpu")], [[], true]);
  assert(!denoFlags(scopesFor("status", ["--backend", "webgpu"], cwd)).includes("--unstable-webgpu"));
  assert(!denoFlags(scopesFor("run", [], cwd)).includes("--unstable-webgpu"));
  // The default run directory is runs/ in the project; export also writes its --out.
  assertEquals(scopesFor("status", [], cwd).write, [`${root}/runs`]);
  assertEquals([...scopesFor("export", ["--out", "/o"], cwd).write].sort(), ["/o", `${root}/runs`].sort());
  // SFTKEY_BLAS_LIB replaces the Debian directories; ".." cannot widen a scope beyond the resolved path.
  assertEquals(scopesFor("run", [], cwd, "/opt/blas/libopenblas.so").ffi, ["/opt/blas/libopenblas.so"]);
  assertEquals(scopesFor("run", ["--run-dir", "runs/../../x"], cwd).write, [
    `${root.slice(0, root.lastIndexOf("/"))}/x`,
  ]);
  // Paths typed elsewhere (deno task's INIT_CWD) reach main.ts absolute, in both flag forms.
  assertEquals(
    absolutePaths(
      ["mine.ts", "--data", "d/train.jsonl", "--run-dir=r", "--seed", "3", "--format", "gsm8k"],
      "/home/u",
    ),
    [
      "/home/u/mine.ts",
      "--data",
      "/home/u/d/train.jsonl",
      "--run-dir=/home/u/r",
      "--seed",
      "3",
      "--format",
      "gsm8k",
    ],
  );
  assertEquals(absolutePaths(["sftkey", "--model", "/abs/m", "--out", "../o"], "/home/u"), [
    "sftkey",
    "--model",
    "/abs/m",
    "--out",
    "/home/o",
  ]);
  const flags = denoFlags(run);
  assert(
    flags.includes("--no-prompt") && !flags.some((f) => /^--allow-(net|run|all)/.test(f)),
    flags.join(" "),
  );
});

Deno.test("permissions: generate and score through the launcher, with a --model path relative to INIT_CWD", async () => {
  const launcher = ["run", "--no-prompt", "--allow-read", "--allow-env", "--allow-run", "src/cli/launch.ts"];
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [...launcher, ...args],
      cwd: root,
      // As `deno task` sets it when typed in fixtures/: the model path is relative to there.
      env: { INIT_CWD: `${root}/fixtures` },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    return JSON.parse(new TextDecoder().decode(out.stdout));
  };
  const generated = await run([
    "generate",
    "--model",
    "goldens/llama",
    "--ids",
    "1,2,3",
    "--max-new-tokens",
    "4",
    "--json",
  ]);
  assertEquals(generated.ids.length, 4);
  const scored = await run(["score", "--model", "goldens/llama", "--ids", "1,2,3", "--json"]);
  assertEquals(scored.tokens.map((t: { id: number }) => t.id), [1, 2, 3]);
  assertEquals(scored.tokens[0].logprob, null);
  assert(scored.tokens.slice(1).every((t: { logprob: number }) => t.logprob < 0));
});
