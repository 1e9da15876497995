/**
 * Runs a pipeline against an artifact store. For each node in order it computes the cache key
 *
 *   key = sha256(canonical JSON of { step name, step version, encoded config, digests of the inputs })
 *
 * where an input's digest is the content digest of the upstream artifact (or of a source file's bytes),
 * then either reuses the verified artifact ("cached"), continues an interrupted resumable attempt
 * ("resumed"), or runs the step ("ran"). Changing one node's config changes its key and so reruns it;
 * downstream nodes rerun only if its output content changes.
 */
import { Data, Effect, Schema } from "effect";
import { InvalidConfig, type ToolkitError } from "../errors.ts";
import { canonicalJson, sha256, sha256File } from "./hash.ts";
import { exists, listFiles } from "../io/fs.ts";
import { describeConfigIssues, type Pipeline, type PipelineNode, type StepNode } from "./pipeline.ts";
import type { Reporter } from "./progress.ts";
import { ArtifactStore } from "./store.ts";
import { FileUnreadable } from "../errors.ts";

/** A step failed; `error` says why. Everything finished before it stays cached. */
export class StepFailed extends Data.TaggedError("StepFailed")<{
  readonly node: string;
  readonly step: string;
  readonly error: ToolkitError;
}> {}

export type NodeStatus = "ran" | "cached" | "resumed";

export interface NodeRecord {
  readonly name: string;
  readonly step: string;
  readonly key: string;
  readonly status: NodeStatus;
  readonly seconds: number;
  readonly dir: string;
}

export interface RunResult {
  readonly records: ReadonlyArray<NodeRecord>;
  /** Output directory (or source path) of every node, by node name. */
  readonly outputs: ReadonlyMap<string, string>;
}

/** How to run a pipeline. */
export interface RunOptions {
  /** Where artifacts are looked up and committed. */
  readonly store: ArtifactStore;
  /** Where lines and progress go. */
  readonly reporter: Reporter;
  /** The backend in use, passed to steps. */
  readonly backend: string;
  /** Node names to recompute even when cached. */
  readonly force?: ReadonlyArray<string>;
}

const keyLength = 24;

/**
 * Content digest of a source: the file's bytes (with its companions beside it, those present, when it
 * names any), or every file of a directory.
 */
export const sourceDigest = (
  path: string,
  companions: ReadonlyArray<string> = [],
): Effect.Effect<string, FileUnreadable> =>
  Effect.tryPromise({
    try: async () => {
      const info = await Deno.stat(path);
      if (info.isFile && companions.length === 0) return await sha256File(path);
      if (info.isFile) {
        const dir = path.slice(0, path.lastIndexOf("/") + 1) || "./";
        const name = path.slice(dir.length);
        const files: Record<string, string> = { [name]: await sha256File(path) };
        for (const c of companions) {
          const other = `${dir}${c}`;
          if (c !== name && await Deno.stat(other).then((i) => i.isFile, () => false)) {
            files[c] = await sha256File(other);
          }
        }
        return await sha256(canonicalJson(files));
      }
      const files: Record<string, string> = {};
      for (const rel of await listFiles(path)) files[rel] = await sha256File(`${path}/${rel}`);
      return await sha256(canonicalJson(files));
    },
    catch: (e) => new FileUnreadable({ path, reason: e instanceof Error ? e.message : String(e) }),
  });

export const nodeKey = (node: StepNode, inputDigests: Readonly<Record<string, string>>) =>
  Effect.promise(async () =>
    (await sha256(canonicalJson({
      step: node.step.name,
      version: node.step.version,
      config: node.config,
      inputs: inputDigests,
    }))).slice(0, keyLength)
  );

const inputDigestsOf = (node: StepNode, digests: ReadonlyMap<string, string>) =>
  Object.fromEntries(Object.entries(node.inputs).map(([k, from]) => [k, digests.get(from)!]));

/** Runs every node in order: reuses cached artifacts, resumes interrupted ones, runs the rest. */
export const runPipeline = (
  pipeline: Pipeline,
  opts: RunOptions,
): Effect.Effect<RunResult, StepFailed | FileUnreadable> =>
  Effect.gen(function* () {
    const digests = new Map<string, string>();
    const outputs = new Map<string, string>();
    const records: NodeRecord[] = [];
    const force = new Set(opts.force ?? []);
    for (const node of pipeline.nodes) {
      if (node.kind === "source") {
        digests.set(node.name, yield* sourceDigest(node.path, node.companions));
        outputs.set(node.name, node.path);
        continue;
      }
      const record = yield* runNode(node, inputDigestsOf(node, digests), outputs, force.has(node.name), opts);
      digests.set(node.name, record.digest);
      outputs.set(node.name, record.dir);
      records.push(record);
    }
    return { records, outputs };
  });

const runNode = (
  node: StepNode,
  inputDigests: Record<string, string>,
  outputs: ReadonlyMap<string, string>,
  forced: boolean,
  opts: RunOptions,
): Effect.Effect<NodeRecord & { digest: string }, StepFailed> =>
  Effect.gen(function* () {
    const { store, reporter } = opts;
    const step = node.step;
    const fail = (error: ToolkitError) => new StepFailed({ node: node.name, step: step.name, error });
    const key = yield* nodeKey(node, inputDigests);

    const found = yield* store.lookup(step.name, key);
    if (found.kind === "hit" && !forced) {
      reporter.log(`[${node.name}] cached (${step.name}/${key})`);
      return {
        name: node.name,
        step: step.name,
        key,
        status: "cached" as const,
        seconds: 0,
        dir: found.dir,
        digest: found.manifest.digest,
      };
    }
    if (found.kind === "corrupt") {
      reporter.log(`[${node.name}] cached artifact is corrupt (${found.reason}); recomputing`);
      yield* store.quarantine(found.dir);
    }

    // Unknown fields are errors, not ignored: a misspelt option would otherwise silently keep its default.
    const config = yield* Schema.decodeUnknown(step.config, { onExcessProperty: "error", errors: "all" })(
      node.config,
    ).pipe(
      Effect.mapError((e) => {
        const { path, reason } = describeConfigIssues(e);
        const where = `${node.name}.config${path ? `.${path}` : ""}`;
        // `where` names the first issue's field already; its reason need not repeat it.
        return fail(new InvalidConfig({ where, reason: path ? reason.replace(`${path}: `, "") : reason }));
      }),
    );
    const inputs = Object.fromEntries(
      step.inputs.map((k) => [k, node.inputs[k] && outputs.get(node.inputs[k])]),
    );
    const started = performance.now();
    const work = yield* store.begin(step.name, key, step.resumable === true).pipe(Effect.mapError(fail));
    reporter.log(
      work.resumed
        ? `[${node.name}] resuming ${step.name} from the checkpoint in ${work.dir}`
        : `[${node.name}] running ${step.name}${forced ? " (forced)" : ""}`,
    );
    const outcome = yield* Effect.scoped(step.run(config, inputs, {
      dir: work.dir,
      resumed: work.resumed,
      node: node.name,
      reporter,
      backend: opts.backend,
    })).pipe(
      Effect.mapError((e) => fail(e as ToolkitError)),
      // Unexpected exceptions (bugs) still say which step they came from.
      Effect.tapDefect(() => Effect.sync(() => reporter.log(`[${node.name}] failed with an internal error`))),
    );
    const seconds = (performance.now() - started) / 1000;
    const done = yield* store.commit({
      step: step.name,
      version: step.version,
      key,
      node: node.name,
      seconds,
    })
      .pipe(Effect.mapError(fail));
    // A step that says whether it resumed is believed (a training step whose checkpoint failed
    // verification restarts from scratch although its working directory was kept).
    const status: NodeStatus = (outcome?.resumed ?? work.resumed) ? "resumed" : "ran";
    reporter.log(
      `[${node.name}] ${status === "resumed" ? "resumed and finished" : "done"} in ${seconds.toFixed(1)}s`,
    );
    return {
      name: node.name,
      step: step.name,
      key,
      status,
      seconds,
      dir: done.dir,
      digest: done.manifest.digest,
    };
  });

export type NodeState = "cached" | "partial" | "pending" | "blocked";

/** What is cached, resumable or still to run, without running anything (`pipeline status`). */
export const pipelineStatus = (
  pipeline: Pipeline,
  store: ArtifactStore,
): Effect.Effect<Array<{ node: PipelineNode; state: NodeState; key?: string }>, FileUnreadable> =>
  Effect.gen(function* () {
    const digests = new Map<string, string>();
    const out: Array<{ node: PipelineNode; state: NodeState; key?: string }> = [];
    for (const node of pipeline.nodes) {
      if (node.kind === "source") {
        digests.set(node.name, yield* sourceDigest(node.path, node.companions));
        continue;
      }
      if (Object.values(node.inputs).some((from) => !digests.has(from))) {
        out.push({ node, state: "blocked" });
        continue;
      }
      const key = yield* nodeKey(node, inputDigestsOf(node, digests));
      const found = yield* store.lookup(node.step.name, key);
      if (found.kind === "hit") {
        digests.set(node.name, found.manifest.digest);
        out.push({ node, state: "cached", key });
      } else {
        const partial = yield* Effect.promise(() => exists(store.partialDir(node.step.name, key)));
        out.push({ node, state: partial && node.step.resumable ? "partial" : "pending", key });
      }
    }
    return out;
  });
