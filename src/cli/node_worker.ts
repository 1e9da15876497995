/**
 * A worker thread of `pipeline --jobs N` (src/cli/workers.ts): it builds the same pipeline as the main
 * thread (the same name or file, the same options), selects the same backend, and then computes the nodes
 * it is sent, one at a time, committing each to the run directory's store exactly as the main thread would
 * (src/engine/runner.ts, runNode). A worker is a separate JavaScript isolate, so its training and
 * generation run in parallel with the other workers' on another core.
 *
 * Messages in: `init` once, then `run`. Out: `done` (the node's record), `failed` (a step's typed error, as
 * a plain object: its class does not survive the copy between threads, its `_tag` and fields do), or
 * `defect` (a bug, with its trace).
 */
import { Cause, Effect, Exit, Option } from "effect";
import { type BackendName, useBackend } from "../backend/backend.ts";
import { consoleReporter } from "../engine/progress.ts";
import { nodeKey, runNode, type RunOptions } from "../engine/runner.ts";
import type { Pipeline, StepNode } from "../engine/pipeline.ts";
import { ArtifactStore } from "../engine/store.ts";
import type { PipelineOptions } from "../../pipelines/data.ts";
import { loadPipeline } from "./load_pipeline.ts";

/** What a worker is told once: how to build the pipeline, and where and on what to compute. */
export interface WorkerInit {
  readonly type: "init";
  readonly pipeline: string;
  readonly options: PipelineOptions;
  readonly backend: string;
  readonly runDir: string;
  /** cpu-blas: this worker's own copy of OpenBLAS (see workers.ts). */
  readonly blasLibrary?: string;
}

/** One node to compute: its key as the main thread computed it, and its inputs' digests and directories. */
export interface WorkerRun {
  readonly type: "run";
  readonly id: number;
  readonly node: string;
  readonly key: string;
  readonly inputDigests: Record<string, string>;
  readonly outputs: Record<string, string>;
  readonly forced: boolean;
  readonly full: boolean;
}

export type WorkerReply =
  | {
    readonly type: "done";
    readonly id: number;
    readonly record: {
      name: string;
      step: string;
      key: string;
      status: "ran" | "cached" | "resumed";
      seconds: number;
      dir: string;
      digest: string;
    };
  }
  | { readonly type: "failed"; readonly id: number; readonly error: Record<string, unknown> }
  | { readonly type: "defect"; readonly id: number; readonly message: string };

interface WorkerScope {
  onmessage: ((e: MessageEvent<WorkerInit | WorkerRun>) => void) | null;
  postMessage(message: WorkerReply): void;
}
const scope = globalThis as unknown as WorkerScope;

const start = async (init: WorkerInit): Promise<{ pipeline: Pipeline; opts: RunOptions }> => {
  const backend = await Effect.runPromiseExit(
    useBackend(init.backend as BackendName, init.blasLibrary ? { blasLibrary: init.blasLibrary } : {}),
  );
  if (Exit.isFailure(backend)) throw new Error(`backend ${init.backend}: ${Cause.pretty(backend.cause)}`);
  const pipeline = await Effect.runPromiseExit(loadPipeline(init.pipeline, init.options));
  if (Exit.isFailure(pipeline)) throw new Error(`pipeline ${init.pipeline}: ${Cause.pretty(pipeline.cause)}`);
  return {
    pipeline: pipeline.value,
    opts: {
      store: new ArtifactStore(`${init.runDir}/artifacts`),
      // Several workers print at once: plain lines, never a rewritten terminal line.
      reporter: consoleReporter({ interactive: false }),
      backend: backend.value,
    },
  };
};

const compute = async (
  ctx: { pipeline: Pipeline; opts: RunOptions },
  m: WorkerRun,
): Promise<WorkerReply> => {
  const node = ctx.pipeline.nodes.find((n): n is StepNode => n.kind === "step" && n.name === m.node);
  if (node === undefined) {
    return { type: "defect", id: m.id, message: `the worker's pipeline has no node ${m.node}` };
  }
  const key = await Effect.runPromise(nodeKey(node, m.inputDigests));
  if (key !== m.key) {
    return {
      type: "defect",
      id: m.id,
      message: `node ${m.node}: the worker built it with another configuration than the main thread ` +
        `(key ${key}, not ${m.key}); does the pipeline's build() depend on something other than its options?`,
    };
  }
  const exit = await Effect.runPromiseExit(
    runNode(
      node,
      m.inputDigests,
      new Map(Object.entries(m.outputs)),
      { forced: m.forced, full: m.full },
      ctx.opts,
    ),
  );
  if (Exit.isSuccess(exit)) return { type: "done", id: m.id, record: exit.value };
  const failure = Cause.failureOption(exit.cause);
  if (Option.isSome(failure)) return { type: "failed", id: m.id, error: { ...failure.value.error } };
  return { type: "defect", id: m.id, message: Cause.pretty(exit.cause) };
};

let ready: Promise<{ pipeline: Pipeline; opts: RunOptions }> | undefined;
// Messages are handled one after another: a worker computes one node at a time.
let queue: Promise<void> = Promise.resolve();

scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === "init") {
    ready = start(m);
    ready.catch(() => {}); // reported with the first node
    return;
  }
  queue = queue.then(async () => {
    let reply: WorkerReply;
    try {
      reply = await compute(await ready!, m);
    } catch (err) {
      reply = {
        type: "defect",
        id: m.id,
        message: err instanceof Error ? err.stack ?? err.message : String(err),
      };
    }
    try {
      scope.postMessage(reply);
    } catch (err) {
      // A reply that cannot be copied to the main thread (an error holding a function, say).
      scope.postMessage({ type: "defect", id: m.id, message: `its reply could not be sent: ${String(err)}` });
    }
  });
};
