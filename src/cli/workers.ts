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
 * loads a file under another name as another copy, so each worker loads its own copy of the library,
 * made in `<run dir>/.workers/` and removed at the end. Results are then bit-identical to --jobs 1.
 */
import { Effect, type Scope } from "effect";
import type { ToolkitError } from "../errors.ts";
import { loadedBlasPath } from "../backend/backend.ts";
import { nodeKey, type NodeRunner, StepFailed } from "../engine/runner.ts";
import type { WorkerInit, WorkerReply, WorkerRun } from "./node_worker.ts";

const WORKER = new URL("./node_worker.ts", import.meta.url).href;

/** A NodeRunner that computes each node on one of at most `size` worker threads (as many as run at once). */
export const workerPool = (
  init: Omit<WorkerInit, "type">,
): Effect.Effect<NodeRunner, never, Scope.Scope> =>
  Effect.gen(function* () {
    const idle: Worker[] = [];
    const all = new Set<Worker>();
    const stop = (w: Worker) => {
      w.terminate();
      all.delete(w);
    };
    const copies = `${init.runDir}/.workers`;
    const blas = init.backend === "cpu-blas" ? loadedBlasPath() : undefined;
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        [...all].forEach(stop);
        if (blas) await Deno.remove(copies, { recursive: true }).catch(() => {});
      })
    );
    const create = (): Effect.Effect<Worker> =>
      Effect.promise(async () => {
        let blasLibrary: string | undefined;
        if (blas) {
          await Deno.mkdir(copies, { recursive: true });
          blasLibrary = `${copies}/libopenblas-${all.size}-${crypto.randomUUID().slice(0, 8)}.so`;
          await Deno.copyFile(blas, blasLibrary);
        }
        const w = new Worker(WORKER, { type: "module" });
        w.postMessage(
          { type: "init", ...init, ...(blasLibrary ? { blasLibrary } : {}) } satisfies WorkerInit,
        );
        all.add(w);
        return w;
      });
    let nextId = 0;
    return (node, inputDigests, outputs, flags) =>
      Effect.gen(function* () {
        const key = yield* nodeKey(node, inputDigests);
        const worker = idle.pop() ?? (yield* create());
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
          worker.onmessage = (e: MessageEvent<WorkerReply>) => {
            if (e.data.id === id) resume(Effect.succeed(e.data));
          };
          // An exception the worker did not catch (it catches its own): reported as a bug.
          worker.onerror = (e: ErrorEvent) => {
            e.preventDefault();
            resume(Effect.succeed({ type: "defect", id, message: e.message }));
          };
          worker.postMessage(message);
          return Effect.sync(() => stop(worker));
        });
        if (reply.type === "defect") {
          stop(worker);
          return yield* Effect.die(new Error(`node ${node.name}, in a worker thread: ${reply.message}`));
        }
        idle.push(worker);
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
