/**
 * One writer per run directory. The lock is a file created exclusively (O_EXCL) holding the owner's pid;
 * it is a scoped resource, released when the run's scope closes. A lock left by a process that no
 * longer exists (killed with SIGKILL, say) is stale and taken over.
 */
import { Effect, Scope } from "effect";
import { RunLocked, WriteFailed } from "../errors.ts";

const LOCK = ".lock";

const processAlive = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    // Without /proc (macOS), fall back to a signal probe: SIGCONT is harmless to a live process.
    try {
      Deno.kill(pid, "SIGCONT");
      return true;
    } catch {
      return false;
    }
  }
};

const tryCreate = (path: string): boolean => {
  try {
    const f = Deno.openSync(path, { write: true, createNew: true });
    f.writeSync(new TextEncoder().encode(`${Deno.pid}\n`));
    f.close();
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  }
};

const acquire = (runDir: string): Effect.Effect<string, RunLocked | WriteFailed> =>
  Effect.try({
    try: () => {
      Deno.mkdirSync(runDir, { recursive: true });
      const path = `${runDir}/${LOCK}`;
      for (let attempt = 0; attempt < 3; attempt++) {
        if (tryCreate(path)) return path;
        let owner = NaN;
        try {
          owner = parseInt(Deno.readTextFileSync(path).trim(), 10);
        } catch { /* removed meanwhile: retry */ }
        if (processAlive(owner)) throw new RunLocked({ path: runDir, pid: owner });
        try {
          Deno.removeSync(path); // stale: its owner is gone
        } catch { /* another process took it over first */ }
      }
      throw new WriteFailed({ path, reason: "could not take the lock after removing a stale one" });
    },
    catch: (e) =>
      e instanceof RunLocked || e instanceof WriteFailed
        ? e
        : new WriteFailed({ path: runDir, reason: e instanceof Error ? e.message : String(e) }),
  });

/** Holds the run directory's lock for the lifetime of the enclosing scope. */
export const lockRunDir = (runDir: string): Effect.Effect<void, RunLocked | WriteFailed, Scope.Scope> =>
  Effect.asVoid(
    Effect.acquireRelease(acquire(runDir), (path) =>
      Effect.sync(() => {
        try {
          Deno.removeSync(path);
        } catch { /* already gone */ }
      })),
  );
