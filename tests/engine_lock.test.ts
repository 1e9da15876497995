/**
 * One writer per run directory: a second run on a directory a live process holds fails with RunLocked
 * naming that pid (in-process, and through the CLI with the task's permissions: exit code 1); a lock left
 * by a dead process (killed with SIGKILL, a pid that no longer exists, our own pid reused after a
 * container restart) is recovered.
 */
import { Effect, Exit } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { lockRunDir } from "../src/engine/lock.ts";
import { RunLocked } from "../src/errors.ts";

const root = new URL("..", import.meta.url).pathname;

/** Takes the lock, runs `inside`, releases it; returns the exit. */
const withLock = <A>(dir: string, inside: Effect.Effect<A> = Effect.void as Effect.Effect<A>) =>
  Effect.runPromiseExit(Effect.scoped(Effect.andThen(lockRunDir(dir), inside)));

const lockedBy = (exit: Exit.Exit<unknown, unknown>): number | undefined => {
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") return undefined;
  const e = exit.cause.error;
  return e instanceof RunLocked ? e.pid : undefined;
};

/** A separate process that holds the lock on `dir` until killed; resolves once it holds it. */
const holder = async (dir: string) => {
  const code = `import { Effect } from "effect";
import { lockRunDir } from "${root}/src/engine/lock.ts";
await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
  yield* lockRunDir(${JSON.stringify(dir)});
  console.log("locked");
  yield* Effect.never;
})));`;
  const child = new Deno.Command(Deno.execPath(), { args: ["eval", code], cwd: root, stdout: "piped" })
    .spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  assertEquals(value?.trim(), "locked");
  reader.releaseLock();
  return child;
};

Deno.test("lock: a live process holds the run directory; others fail with RunLocked naming its pid", async () => {
  const dir = await Deno.makeTempDir();
  const child = await holder(dir);
  try {
    assertEquals(lockedBy(await withLock(dir)), child.pid);

    // The CLI says so in one line and exits non-zero, before touching anything. It runs with the deno
    // task's permissions, not -A: a liveness check that needs more (reading /proc, sending a signal)
    // would wrongly find the holder dead there.
    const cli = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        `${root}/src/cli/main.ts`,
        "run",
        "--quick",
        "--run-dir",
        dir,
        "--backend",
        "cpu",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(cli.stderr);
    assertEquals(cli.code, 1, stderr);
    assert(stderr.includes(`locked by pid ${child.pid}`), stderr);
    assertEquals((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), [".lock"]);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
  // Killed: its lock is stale and the next run takes it over, then releases it.
  const exit = await withLock(dir, Effect.sync(() => Deno.readTextFileSync(`${dir}/.lock`).trim()));
  assert(Exit.isSuccess(exit), String(exit));
  assertEquals(exit.value, String(Deno.pid));
  assertEquals((await Array.fromAsync(Deno.readDir(dir))).length, 0);
});

Deno.test("lock: a lock naming a process that no longer exists is recovered", async () => {
  const dir = await Deno.makeTempDir();
  const gone = new Deno.Command(Deno.execPath(), { args: ["eval", ""] }).spawn();
  await gone.status;
  await Deno.writeTextFile(`${dir}/.lock`, `${gone.pid}\n`);
  assert(Exit.isSuccess(await withLock(dir)));
  // Unreadable content (a crash before the pid was written, by an older version) is stale too.
  await Deno.writeTextFile(`${dir}/.lock`, "");
  assert(Exit.isSuccess(await withLock(dir)));
});

Deno.test("lock: our own pid in a lock we do not hold is stale; a second in-process run is refused", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/.lock`, `${Deno.pid}\n`);
  assert(Exit.isSuccess(await withLock(dir)), "a reused pid blocked the run");
  const nested = await withLock(dir, Effect.promise(() => withLock(dir)));
  assert(Exit.isSuccess(nested));
  assertEquals(lockedBy(nested.value), Deno.pid);
});
