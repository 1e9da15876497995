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
import { Cause, Data, Effect, Exit, Option, Queue, Schema } from "effect";
import { describeError, InvalidConfig, type ToolkitError } from "../errors.ts";
import { canonicalJson, sha256, sha256File } from "./hash.ts";
import { exists, listFiles, writeFileAtomic } from "../io/fs.ts";
import { type FileStat, hashWithStat, parseStat, statOf, trusted } from "./file_stats.ts";
import { describeConfigIssues, type Pipeline, type PipelineNode, type StepNode } from "./pipeline.ts";
import type { Reporter } from "./progress.ts";
import { ArtifactStore, type Lookup } from "./store.ts";
import { FileUnreadable } from "../errors.ts";

/** A step failed; `error` says why. Everything finished before it stays cached. */
export class StepFailed extends Data.TaggedError("StepFailed")<{
  readonly node: string;
  readonly step: string;
  readonly error: ToolkitError;
}> {}

/** What happened to a node in a run: computed, reused, or finished from an interrupted attempt. */
export type NodeStatus = "ran" | "cached" | "resumed";

/** One node's line in a run's record (summary.json's steps). */
export interface NodeRecord {
  /** The node's name in the pipeline. */
  readonly name: string;
  /** Its step's name. */
  readonly step: string;
  /** Its cache key (the store's directory name). */
  readonly key: string;
  /** Computed, reused or resumed. */
  readonly status: NodeStatus;
  /** Seconds it took this run (0 when cached). */
  readonly seconds: number;
  /** Its artifact's directory. */
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
  /**
   * How many steps may run at once (default 1: one after another, in pipeline order). Above 1, a node
   * runs as soon as its inputs are done, on `runElsewhere` when given (the CLI's worker threads).
   */
  readonly jobs?: number;
  /** Runs one node outside this thread; it commits to the same store and returns the record. */
  readonly runElsewhere?: NodeRunner;
}

/** What runs one node: given its inputs' digests and output directories, it computes (or reuses) it. */
export type NodeRunner = (
  node: StepNode,
  inputDigests: Record<string, string>,
  outputs: ReadonlyMap<string, string>,
  flags: { forced: boolean; full: boolean },
) => Effect.Effect<NodeRecord & { digest: string }, StepFailed>;

const keyLength = 24;

/**
 * Digests of source files, remembered with their stat in `<store>/.source-stats.json` (the DVC way): a
 * rerun hashes a source again only when its size, times, inode or device changed (engine/file_stats.ts),
 * so a large dataset or a multi-gigabyte `--model` directory is not read to find that nothing changed.
 * A change that keeps all of them is not seen unless `full` (`status --verify`).
 */
export class SourceStats {
  private dirty = false;

  private constructor(
    private readonly path: string | undefined,
    private readonly entries: Record<string, { stat: FileStat; digest: string; recordedMs: number }>,
  ) {}

  /** A missing or unreadable record file is an empty one; `store` undefined keeps nothing. */
  static async load(store: ArtifactStore | undefined): Promise<SourceStats> {
    if (store === undefined) return new SourceStats(undefined, {});
    const path = `${store.root}/.source-stats.json`;
    try {
      const parsed = JSON.parse(await Deno.readTextFile(path));
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
        return new SourceStats(path, parsed);
      }
    } catch {
      // Absent or damaged: start afresh.
    }
    return new SourceStats(path, {});
  }

  /** SHA-256 of a file's bytes: the remembered one if its stat vouches for it, else hashed (and remembered). */
  async digest(path: string, full: boolean): Promise<string> {
    const entry = this.entries[path];
    if (!full && entry && typeof entry.digest === "string" && typeof entry.recordedMs === "number") {
      const stat = parseStat(entry.stat);
      if (trusted(stat, statOf(await Deno.stat(path)), entry.recordedMs)) return entry.digest;
    }
    const hashed = await hashWithStat(path, sha256File);
    if (hashed.stat && this.path !== undefined) {
      this.entries[path] = { stat: hashed.stat, digest: hashed.digest, recordedMs: Date.now() };
      this.dirty = true;
    }
    return hashed.digest;
  }

  /** Writes the records if any changed; best effort (a read-only run directory just hashes again). */
  async save(): Promise<void> {
    if (!this.dirty || this.path === undefined) return;
    this.dirty = false;
    await Deno.mkdir(this.path.slice(0, this.path.lastIndexOf("/")), { recursive: true }).catch(() => {});
    await Effect.runPromise(Effect.either(writeFileAtomic(this.path, JSON.stringify(this.entries) + "\n")));
  }
}

/**
 * Content digest of a source: the file's bytes (with its companions beside it, those present, when it
 * names any), or every file of a directory. `stats` remembers digests by stat (see SourceStats); `full`
 * hashes every file regardless.
 */
export const sourceDigest = (
  path: string,
  companions: ReadonlyArray<string> = [],
  stats?: SourceStats,
  full = false,
): Effect.Effect<string, FileUnreadable> =>
  Effect.tryPromise({
    try: async () => {
      const fileDigest = (p: string) => stats ? stats.digest(p, full) : sha256File(p);
      const info = await Deno.stat(path);
      if (info.isFile && companions.length === 0) return await fileDigest(path);
      if (info.isFile) {
        const dir = path.slice(0, path.lastIndexOf("/") + 1) || "./";
        const name = path.slice(dir.length);
        const files: Record<string, string> = { [name]: await fileDigest(path) };
        for (const c of companions) {
          const other = `${dir}${c}`;
          if (c !== name && await Deno.stat(other).then((i) => i.isFile, () => false)) {
            files[c] = await fileDigest(other);
          }
        }
        return await sha256(canonicalJson(files));
      }
      const files: Record<string, string> = {};
      for (const rel of await listFiles(path)) files[rel] = await fileDigest(`${path}/${rel}`);
      return await sha256(canonicalJson(files));
    },
    catch: (e) => new FileUnreadable({ path, reason: e instanceof Error ? e.message : String(e) }),
  });

/** The digest of every source node, and the stat records saved. */
const sourceDigests = (pipeline: Pipeline, store: ArtifactStore, full: boolean) =>
  Effect.gen(function* () {
    const stats = yield* Effect.promise(() => SourceStats.load(store));
    const digests = new Map<string, string>();
    for (const node of pipeline.nodes) {
      if (node.kind === "source") {
        digests.set(node.name, yield* sourceDigest(node.path, node.companions, stats, full));
      }
    }
    yield* Effect.promise(() => stats.save());
    return digests;
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

/**
 * What each step node would do now, from stat lookups: its key when its inputs' digests are known, and
 * what the store holds under it. A node that will not be a hit (missing, corrupt, forced, or below one)
 * will run, and so read its inputs.
 */
const survey = (
  pipeline: Pipeline,
  store: ArtifactStore,
  sources: ReadonlyMap<string, string>,
  opts: { full: boolean; force: ReadonlySet<string> },
) =>
  Effect.gen(function* () {
    const digests = new Map(sources);
    const out: Array<{ node: StepNode; key?: string; found?: Lookup }> = [];
    for (const node of pipeline.nodes) {
      if (node.kind === "source") continue;
      if (Object.values(node.inputs).some((from) => !digests.has(from))) {
        out.push({ node });
        continue;
      }
      const key = yield* nodeKey(node, inputDigestsOf(node, digests));
      const found = yield* store.lookup(node.step.name, key, opts.full);
      if (found.kind === "hit" && !opts.force.has(node.name)) digests.set(node.name, found.manifest.digest);
      out.push({ node, key, found });
    }
    return out;
  });

/** Runs every node in order: reuses cached artifacts, resumes interrupted ones, runs the rest. */
export const runPipeline = (
  pipeline: Pipeline,
  opts: RunOptions,
): Effect.Effect<RunResult, StepFailed | FileUnreadable> =>
  Effect.gen(function* () {
    const force = new Set(opts.force ?? []);
    const digests = new Map(yield* sourceDigests(pipeline, opts.store, false));
    // Artifacts that a step about to run will read are verified in full (every file hashed); the others
    // are passed on by their digests, checked by stat only (see store.ts).
    const read = new Set<string>();
    for (const p of yield* survey(pipeline, opts.store, digests, { full: false, force })) {
      if (p.found?.kind !== "hit" || force.has(p.node.name)) {
        for (const from of Object.values(p.node.inputs)) read.add(from);
      }
    }
    return yield* schedule(pipeline, opts, digests, read, force);
  });

/**
 * The scheduler: every node starts as soon as its inputs are done, at most `jobs` computing at once (cached
 * nodes are taken in passing). Each scan walks the nodes in pipeline order and stops when every slot is
 * taken, so one job (the default) runs the nodes strictly in pipeline order, one after another. Two nodes
 * with the same key (the same work under two names) never compute together: the second waits and then
 * finds the first's artifact. After a failure nothing new starts; the steps already running finish and stay
 * cached, and the first failure is reported.
 */
const schedule = (
  pipeline: Pipeline,
  opts: RunOptions,
  digests: Map<string, string>,
  read: ReadonlySet<string>,
  force: ReadonlySet<string>,
): Effect.Effect<RunResult, StepFailed | FileUnreadable> =>
  // Scoped: when this returns (a bug ends it early), the steps still running are interrupted with it.
  Effect.scoped(Effect.gen(function* () {
    const jobs = opts.jobs ?? 1;
    const compute = opts.runElsewhere ??
      ((node, inputDigests, outputs, flags) => runNode(node, inputDigests, outputs, flags, opts));
    const outputs = new Map<string, string>();
    for (const node of pipeline.nodes) if (node.kind === "source") outputs.set(node.name, node.path);
    const records = new Map<string, NodeRecord>();
    const pending = pipeline.nodes.filter((n): n is StepNode => n.kind === "step");
    const inFlight = new Set<string>(); // keys being computed
    // Each scan would otherwise hash every ready node's key and look it up in the store again (hundreds of
    // nodes in the comparison, a scan per finished step): a key is fixed once the inputs are known, and a
    // key not in the store stays absent until a node with that key finishes.
    const keys = new Map<string, string>();
    const absent = new Set<string>();
    const finished = yield* Queue.unbounded<
      { node: StepNode; key: string; exit: Exit.Exit<NodeRecord & { digest: string }, StepFailed> }
    >();
    let running = 0;
    let failure: StepFailed | undefined;
    const settle = (node: StepNode, record: NodeRecord & { digest: string }) => {
      digests.set(node.name, record.digest);
      outputs.set(node.name, record.dir);
      records.set(node.name, record);
    };
    while (true) {
      // Start what can start; a cached node settles at once and may make others ready, so scan again.
      let scanAgain = failure === undefined;
      while (scanAgain) {
        scanAgain = false;
        for (const node of [...pending]) {
          if (running >= jobs) break;
          if (Object.values(node.inputs).some((from) => !digests.has(from))) continue;
          const inputDigests = inputDigestsOf(node, digests);
          const key = keys.get(node.name) ?? (yield* nodeKey(node, inputDigests));
          keys.set(node.name, key);
          if (inFlight.has(key)) continue;
          const flags = { forced: force.has(node.name), full: read.has(node.name) };
          if (!flags.forced && !absent.has(key)) {
            const found = yield* opts.store.lookup(node.step.name, key, flags.full);
            if (found.kind === "hit") {
              pending.splice(pending.indexOf(node), 1);
              settle(node, reuse(node, key, found, opts.reporter));
              scanAgain = true;
              continue;
            }
            absent.add(key);
          }
          pending.splice(pending.indexOf(node), 1);
          inFlight.add(key);
          running++;
          yield* Effect.forkScoped(
            Effect.exit(compute(node, inputDigests, outputs, flags)).pipe(
              Effect.flatMap((exit) => Queue.offer(finished, { node, key, exit })),
            ),
          );
        }
      }
      if (running === 0) break;
      const done = yield* Queue.take(finished);
      running--;
      inFlight.delete(done.key);
      absent.delete(done.key);
      if (Exit.isSuccess(done.exit)) settle(done.node, done.exit.value);
      else {
        const failed = Cause.failureOption(done.exit.cause);
        // A defect (a bug) ends the run at once; the other workers are interrupted with it.
        if (Option.isNone(failed)) return yield* Effect.failCause(done.exit.cause);
        failure ??= failed.value;
        // Said now: the steps still running may take hours before the run ends with it. Not said for the
        // failure the run ends with at once (its error says it); a later one is said, or it would be lost.
        if (running > 0 || failure !== failed.value) {
          opts.reporter.log(
            `[${done.node.name}] failed: ${describeError(failed.value.error)}` +
              (running > 0 ? `; waiting for the ${running} step(s) still running, then stopping` : ""),
          );
        }
      }
    }
    if (failure !== undefined) return yield* Effect.fail(failure);
    if (pending.length > 0) {
      return yield* Effect.die(
        new Error(`nodes never became ready: ${pending.map((n) => n.name).join(", ")}`),
      );
    }
    const ordered = pipeline.nodes.flatMap((n) => (records.has(n.name) ? [records.get(n.name)!] : []));
    return { records: ordered, outputs };
  }));

/** A node whose artifact the store has: said, and recorded as cached. */
const reuse = (
  node: StepNode,
  key: string,
  found: Extract<Lookup, { kind: "hit" }>,
  reporter: Reporter,
): NodeRecord & { digest: string } => {
  reporter.log(`[${node.name}] cached (${node.step.name}/${key})`);
  return {
    name: node.name,
    step: node.step.name,
    key,
    status: "cached",
    seconds: 0,
    dir: found.dir,
    digest: found.manifest.digest,
  };
};

/** Runs one node here: reuses its artifact, resumes its interrupted attempt, or computes it. */
export const runNode = (
  node: StepNode,
  inputDigests: Record<string, string>,
  outputs: ReadonlyMap<string, string>,
  { forced, full }: { forced: boolean; full: boolean },
  opts: RunOptions,
): Effect.Effect<NodeRecord & { digest: string }, StepFailed> =>
  Effect.gen(function* () {
    const { store, reporter } = opts;
    const step = node.step;
    const fail = (error: ToolkitError) => new StepFailed({ node: node.name, step: step.name, error });
    const key = yield* nodeKey(node, inputDigests);

    const found = yield* store.lookup(step.name, key, full);
    if (found.kind === "hit" && !forced) return reuse(node, key, found, reporter);
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

export type NodeState = "cached" | "partial" | "pending" | "blocked" | "corrupt";

/**
 * What is cached, resumable or still to run, without running anything (`pipeline status`). By stat, or
 * with `verify` by hashing every source and artifact file in full; a corrupt artifact says why.
 */
export const pipelineStatus = (
  pipeline: Pipeline,
  store: ArtifactStore,
  verify = false,
): Effect.Effect<
  Array<{ node: PipelineNode; state: NodeState; key?: string; reason?: string }>,
  FileUnreadable
> =>
  Effect.gen(function* () {
    const sources = yield* sourceDigests(pipeline, store, verify);
    const out: Array<{ node: PipelineNode; state: NodeState; key?: string; reason?: string }> = [];
    for (
      const { node, key, found } of yield* survey(pipeline, store, sources, {
        full: verify,
        force: new Set(),
      })
    ) {
      if (key === undefined || found === undefined) out.push({ node, state: "blocked" });
      else if (found.kind === "hit") out.push({ node, state: "cached", key });
      else if (found.kind === "corrupt") out.push({ node, state: "corrupt", key, reason: found.reason });
      else {
        const partial = yield* Effect.promise(() => exists(store.partialDir(node.step.name, key)));
        out.push({ node, state: partial && node.step.resumable ? "partial" : "pending", key });
      }
    }
    return out;
  });
