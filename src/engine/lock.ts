/**
 * One writer per run directory. The lock is an exclusive advisory lock (flock) on `<run dir>/.lock`,
 * which holds the owner's pid for messages. The kernel drops the lock when its holder exits in any way,
 * SIGKILL included, so a lock left by a killed run is never in the way, and no liveness check of a pid
 * is needed: such checks need /proc or signals, which Deno grants only with --allow-all or --allow-run,
 * permissions the pipeline runs without. It is a scoped resource, released when the run's scope closes.
 */
import { Effect, Scope } from "effect";
import { RunLocked, WriteFailed } from "../errors.ts";

const LOCK = ".lock";

interface Held {
  readonly path: string;
  readonly file: Deno.FsFile;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** The holder's pid; a holder that has just taken the lock may not have written it yet, so wait a little. */
const ownerOf = (path: string): number => {
  for (let i = 0; i < 20; i++) {
    const pid = parseInt(Deno.readTextFileSync(path).trim(), 10);
    if (Number.isInteger(pid) && pid > 0) return pid;
    sleepSync(5);
  }
  return 0;
};

const inode = (path: string): number | null | undefined => {
  try {
    return Deno.statSync(path).ino;
  } catch {
    return undefined;
  }
};

const acquire = (runDir: string): Effect.Effect<Held, RunLocked | WriteFailed> =>
  Effect.try({
    try: () => {
      Deno.mkdirSync(runDir, { recursive: true });
      const path = `${runDir}/${LOCK}`;
      for (let attempt = 0; attempt < 5; attempt++) {
        const file = Deno.openSync(path, { read: true, write: true, create: true });
        if (!file.tryLockSync(true)) {
          file.close();
          throw new RunLocked({ path: runDir, pid: ownerOf(path) });
        }
        // The previous holder removes the file when it releases the lock; if that happened between our
        // open and our lock, we hold a lock on a file no longer under the name: try again on the new one.
        if (inode(path) !== file.statSync().ino) {
          file.close();
          continue;
        }
        file.truncateSync(0);
        const bytes = new TextEncoder().encode(`${Deno.pid}\n`);
        for (let written = 0; written < bytes.length;) written += file.writeSync(bytes.subarray(written));
        return { path, file };
      }
      throw new WriteFailed({ path, reason: "the lock file kept being replaced; is another run starting?" });
    },
    catch: (e) =>
      e instanceof RunLocked || e instanceof WriteFailed
        ? e
        : new WriteFailed({ path: runDir, reason: e instanceof Error ? e.message : String(e) }),
  });

/** Holds the run directory's lock for the lifetime of the enclosing scope. */
export const lockRunDir = (runDir: string): Effect.Effect<void, RunLocked | WriteFailed, Scope.Scope> =>
  Effect.asVoid(
    Effect.acquireRelease(acquire(runDir), ({ path, file }) =>
      Effect.sync(() => {
        // Removed while still locked, so nobody can lock this file after us and believe it holds the name.
        try {
          Deno.removeSync(path);
        } catch { /* already gone */ }
        file.close();
      })),
  );
