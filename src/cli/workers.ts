/**
 * `pipeline --jobs N`: up to N worker threads (src/cli/node_worker.ts) that compute a pipeline's nodes in
 * parallel. JavaScript runs one thread per isolate, and the cpu backends compute on the calling thread, so
 * a single process uses one core however many it has; the comparison (pipelines/compare.ts) is dozens of
 * independent training runs, and workers let it use them all.
 *
 * A worker is started when the scheduler (src/engine/runner.ts) first needs one, builds the pipeline once
 * and then takes node after node; all of them end with the run. An interrupted run (Ctrl-C) terminates its
 * workers where they are: their training resumes from its last checkpoint on the next run, as after kill -9.
 *
 * OpenBLAS: Debian's serial build is not safe to call from two threads at once (it shares its work
 * buffers without a lock): two trainings on cpu-blas in two threads drifted apart from the same trainings
 * run one after the other from the third step on (gradient norm 2.3295053 against 2.3295044), while the
 * cpu backend's stayed bit-identical. The library keeps that state per loaded copy, and the dynamic loader
 * loads a file under another name as another copy, so each worker loads its own copy of the library (made
 * by the launcher, below). Results are then bit-identical to --jobs 1.
 */
import { Effect, type Scope } from "effect";
import { InvalidConfig, type ToolkitError } from "../errors.ts";
import { loadedBlasPath } from "../backend/backend.ts";
import { nodeKey, type NodeRunner, StepFailed } from "../engine/runner.ts";
import type { WorkerInit, WorkerReply, WorkerRun } from "./node_worker.ts";

const WORKER = new URL("./node_worker.ts", import.meta.url).href;

/** A worker thread, the OpenBLAS copy it loaded, and the reply its current node waits for. */
interface Slot {
  readonly worker: Worker;
  readonly blasLibrary?: string;
  /** Set while a node runs on it: hands the worker's reply (or its death, as a defect) to that node. */
  waiting?: (reply: WorkerReply) => void;
  dead: boolean;
}

/**
 * A NodeRunner that computes each node on a worker thread: as many threads as nodes run at once (the
 * scheduler's --jobs), each kept for the next node. `blasCopies`: the workers' copies of OpenBLAS that the
 * launcher made (src/cli/launch.ts, one per job); without them, on cpu-blas, the copies are made in
 * `<run dir>/.workers/`, which needs permission to load libraries from there (deno run -A does; the
 * launcher does not grant it, and makes the copies itself).
 */
export const workerPool = (
  init: Omit<WorkerInit, "type" | "blasLibrary"> & { readonly blasCopies?: ReadonlyArray<string> },
): Effect.Effect<NodeRunner, InvalidConfig, Scope.Scope> =>
  Effect.gen(function* () {
    const { blasCopies, ...shared } = init;
    const blas = init.backend === "cpu-blas" ? loadedBlasPath() : undefined;
    const fallbackDir = `${init.runDir}/.workers`;
    const makeCopies = blas !== undefined && blasCopies === undefined;
    if (makeCopies) {
      const probe = `${fallbackDir}/libopenblas.so`;
      const ffi = yield* Effect.promise(() => Deno.permissions.query({ name: "ffi", path: probe }));
      if (ffi.state !== "granted") {
        return yield* new InvalidConfig({
          where: "--jobs",
          reason: "on cpu-blas each worker thread needs its own copy of OpenBLAS, and none was made (the " +
            "launcher makes them in a temporary directory: is it writable? TMPDIR); use --jobs 1 or --backend cpu",
        });
      }
      // The lock is held: copies left by a run that was killed are nobody's.
      yield* Effect.promise(() => Deno.remove(fallbackDir, { recursive: true }).catch(() => {}));
    }
    const freeCopies = [...(blasCopies ?? [])];
    const idle: Slot[] = [];
    const all = new Set<Slot>();
    const stop = (slot: Slot) => {
      slot.dead = true;
      slot.worker.terminate();
      all.delete(slot);
      const at = idle.indexOf(slot);
      if (at >= 0) idle.splice(at, 1);
      // Nothing runs on it any more: another worker may load the same copy.
      if (slot.blasLibrary && !makeCopies) freeCopies.push(slot.blasLibrary);
    };
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        [...all].forEach(stop);
        if (makeCopies) await Deno.remove(fallbackDir, { recursive: true }).catch(() => {});
      })
    );
    const copyFor = (): Effect.Effect<string | undefined> =>
      Effect.promise(async () => {
        if (blas === undefined) return undefined;
        if (!makeCopies) return freeCopies.pop();
        await Deno.mkdir(fallbackDir, { recursive: true });
        const path = `${fallbackDir}/libopenblas-${crypto.randomUUID().slice(0, 8)}.so`;
        await Deno.copyFile(blas, path);
        return path;
      });
    const create = (): Effect.Effect<Slot> =>
      Effect.gen(function* () {
        const blasLibrary = yield* copyFor();
        if (blas !== undefined && blasLibrary === undefined) {
          return yield* Effect.die(new Error("more worker threads than copies of OpenBLAS"));
        }
        const slot: Slot = { worker: new Worker(WORKER, { type: "module" }), blasLibrary, dead: false };
        slot.worker.onmessage = (e: MessageEvent<WorkerReply>) => slot.waiting?.(e.data);
        // A worker that dies (an exception it did not catch; it catches its own) or whose reply cannot be
        // read is finished: the node running on it fails as a bug, and no node is sent to it again.
        const die = (message: string) => {
          const waiting = slot.waiting;
          stop(slot);
          waiting?.({ type: "defect", id: -1, message });
        };
        slot.worker.onerror = (e: ErrorEvent) => {
          e.preventDefault();
          die(e.message);
        };
        slot.worker.onmessageerror = () => die("its reply could not be read");
        slot.worker.postMessage(
          { type: "init", ...shared, ...(blasLibrary ? { blasLibrary } : {}) } satisfies WorkerInit,
        );
        all.add(slot);
        return slot;
      });
    let nextId = 0;
    return (node, inputDigests, outputs, flags) =>
      Effect.gen(function* () {
        const key = yield* nodeKey(node, inputDigests);
        const slot = idle.pop() ?? (yield* create());
        const id = nextId++;
        const message: WorkerRun = {
          type: "run",
          id,
          node: node.name,
          key,
          inputDigests,
          outputs: Object.fromEntries(Object.values(node.inputs).map((from) => [from, outputs.get(from)!])),
          ...flags,
        };
        const reply = yield* Effect.async<WorkerReply>((resume) => {
          slot.waiting = (r) => {
            if (r.id === id || r.type === "defect") resume(Effect.succeed(r));
          };
          slot.worker.postMessage(message);
          // Interrupted (Ctrl-C, or another node's bug): the worker stops where it is.
          return Effect.sync(() => stop(slot));
        });
        slot.waiting = undefined;
        if (reply.type === "defect") {
          if (!slot.dead) stop(slot);
          return yield* Effect.die(new Error(`node ${node.name}, in a worker thread: ${reply.message}`));
        }
        idle.push(slot);
        if (reply.type === "failed") {
          return yield* new StepFailed({
            node: node.name,
            step: node.step.name,
            error: reply.error as unknown as ToolkitError,
          });
        }
        return reply.record;
      });
  });
