/**
 * Least privilege: a pipeline run with the `pipeline` task's exact flags (read from deno.json) cannot
 * reach the network (a model hub or anything else), start a process, or load a native library outside
 * the FFI scope the task grants, and is never prompted for any of them: each attempt fails at once with
 * Deno's permission error. The probe is a user pipeline file, the code a run executes with the most
 * freedom.
 */
import { assert, assertEquals } from "./assert.ts";

const root = new URL("..", import.meta.url).pathname;

/** The flags of the `pipeline` task: everything between "deno run" and the entry point. */
const taskFlags = async (): Promise<string[]> => {
  const task: string = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)).tasks.pipeline;
  const words = task.split(/\s+/);
  assertEquals(words.slice(0, 2), ["deno", "run"]);
  return words.slice(2, words.indexOf("src/cli/main.ts"));
};

Deno.test("permissions: a pipeline run cannot use the network, start processes or load other libraries", async () => {
  const flags = await taskFlags();
  assert(!flags.some((f) => /^--allow-(net|run|all)|^-A$/.test(f)), flags.join(" "));
  const dir = await Deno.makeTempDir();
  const out = `${dir}/probe.json`;
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
await Deno.writeTextFile(${JSON.stringify(out)}, JSON.stringify(results));
export const build = () => {
  throw new Error("probe only");
};
`,
  );
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, `${root}/src/cli/main.ts`, "run", `${dir}/probe.ts`, "--run-dir", `${dir}/run`],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    // A terminal on stdin would let Deno ask for missing permissions; --no-prompt must refuse instead.
    stdin: "null",
  }).output();
  assertEquals(run.code, 1, new TextDecoder().decode(run.stderr));
  const results: Record<string, string> = JSON.parse(await Deno.readTextFile(out));
  assertEquals(Object.keys(results).length, 6);
  for (const [what, result] of Object.entries(results)) {
    assert(/^NotCapable: Requires (net|run|ffi) access/.test(result), `${what}: ${result}`);
  }
  await Deno.remove(dir, { recursive: true });
});
