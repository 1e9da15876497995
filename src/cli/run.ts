/**
 * Running a pipeline for the command line: take the run directory's lock, run, then write
 * `<run dir>/summary.json` and print the step and metrics tables.
 */
import { Effect, Option, Schema } from "effect";
import type { Pipeline } from "../engine/pipeline.ts";
import { isTempFile, readFile, writeFileAtomic } from "../io/fs.ts";
import { lockRunDir } from "../engine/lock.ts";
import { consoleReporter } from "../engine/progress.ts";
import { pipelineStatus, runPipeline } from "../engine/runner.ts";
import { ArtifactStore } from "../engine/store.ts";
import type { PipelineOptions } from "../../pipelines/data.ts";
import { workerPool } from "./workers.ts";
import {
  DroppedRows,
  formatMetricsTable,
  formatStepsTable,
  HeldOut,
  ModelMetrics,
  Summary,
} from "../report/summary.ts";

export const storeFor = (runDir: string) => new ArtifactStore(`${runDir}/artifacts`);

const readMetrics = (dir: string) =>
  Effect.promise(async () =>
    Schema.decodeUnknownSync(ModelMetrics, { onExcessProperty: "ignore" })(
      JSON.parse(await Deno.readTextFile(`${dir}/metrics.json`)),
    )
  );

const StepReport = Schema.Struct({
  dropped: Schema.optional(DroppedRows.pipe(Schema.omit("node"))),
  heldOut: Schema.optional(HeldOut.pipe(Schema.omit("node"))),
});

/**
 * The entries of a step's report.json that summary.json repeats; undefined without a report.json or when
 * its entries have another shape (a step of a user's pipeline may use the same names for its own facts).
 */
const readReport = (dir: string) =>
  Effect.promise(async () => {
    const text = await Deno.readTextFile(`${dir}/report.json`).catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      return Option.getOrUndefined(
        Schema.decodeUnknownOption(StepReport, { onExcessProperty: "ignore" })(JSON.parse(text)),
      );
    } catch {
      return undefined;
    }
  });

/** A published file replaces the run directory's copy atomically (a reader never sees half of it). */
const copyFile = (from: string, to: string) =>
  Effect.flatMap(readFile(from).pipe(Effect.orDie), (bytes) => writeFileAtomic(to, bytes));

const removeTempFiles = async (dir: string) => {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && isTempFile(e.name)) await Deno.remove(`${dir}/${e.name}`).catch(() => {});
  }
};

export const runAndSummarise = (
  pipeline: Pipeline,
  opts: {
    runDir: string;
    force: ReadonlyArray<string>;
    backend: string;
    /** --jobs above 1: how many steps at once, and how the workers build the same pipeline. */
    jobs?: { count: number; pipeline: string; options: PipelineOptions; blasCopies?: ReadonlyArray<string> };
  },
) =>
  Effect.scoped(Effect.gen(function* () {
    yield* lockRunDir(opts.runDir);
    // A run killed while writing summary.json (or another published file) left its temporary file; with
    // the lock held no live writer can own one, so they are junk.
    yield* Effect.promise(() => removeTempFiles(opts.runDir));
    const reporter = consoleReporter();
    const started = performance.now();
    reporter.log(`pipeline ${pipeline.name}: ${pipeline.description}`);
    reporter.log(`run directory ${opts.runDir}, backend ${opts.backend}`);
    for (const [name, value] of Object.entries(pipeline.settings ?? {})) reporter.log(`${name}: ${value}`);
    if (opts.jobs) reporter.log(`jobs: up to ${opts.jobs.count} steps at once, each on a worker thread`);
    const result = yield* runPipeline(pipeline, {
      store: storeFor(opts.runDir),
      reporter,
      backend: opts.backend,
      force: opts.force,
      ...(opts.jobs
        ? {
          jobs: opts.jobs.count,
          runElsewhere: yield* workerPool({
            pipeline: opts.jobs.pipeline,
            options: opts.jobs.options,
            backend: opts.backend,
            runDir: opts.runDir,
            ...(opts.jobs.blasCopies ? { blasCopies: opts.jobs.blasCopies } : {}),
          }),
        }
        : {}),
    });
    const models: Record<string, ModelMetrics> = {};
    for (const node of pipeline.nodes) {
      if (node.kind === "step" && node.step.producesMetrics) {
        models[node.name.replace(/(^|\/)eval-/, "$1")] = yield* readMetrics(result.outputs.get(node.name)!);
      }
    }
    for (const node of pipeline.nodes) {
      if (node.kind !== "step") continue;
      for (const file of node.step.publishes ?? []) {
        yield* copyFile(`${result.outputs.get(node.name)!}/${file}`, `${opts.runDir}/${file}`);
        reporter.log(`${node.name}: ${opts.runDir}/${file}`);
      }
    }
    // Steps' report.json entries that summary.json repeats: rows dropped, test rows held out.
    const dropped: Array<typeof DroppedRows.Type> = [];
    const heldOut: Array<typeof HeldOut.Type> = [];
    for (const node of pipeline.nodes) {
      if (node.kind !== "step") continue;
      const report = yield* readReport(result.outputs.get(node.name)!);
      if (report?.dropped) dropped.push({ node: node.name, ...report.dropped });
      if (report?.heldOut) heldOut.push({ node: node.name, ...report.heldOut });
    }
    for (const d of dropped) {
      reporter.log(
        `${d.node}: dropped ${d.count} rows (${d.reason}): ${d.rows.slice(0, 5).join(", ")}${
          d.rows.length > 5 ? ", ..." : ""
        }`,
      );
    }
    for (const h of heldOut) {
      reporter.log(
        `${h.node}: evaluated on ${h.rows} of ${h.of} rows of ${h.from} held out of training (seed ${h.seed})`,
      );
    }
    const summary: Summary = {
      pipeline: pipeline.name,
      backend: opts.backend,
      run_dir: opts.runDir,
      finished: new Date().toISOString(),
      seconds: (performance.now() - started) / 1000,
      ...(pipeline.settings ? { settings: pipeline.settings } : {}),
      steps: result.records.map(({ name, step, key, status, seconds }) => ({
        name,
        step,
        key,
        status,
        seconds,
      })),
      models,
      ...(dropped.length > 0 ? { dropped } : {}),
      ...(heldOut.length > 0 ? { held_out: heldOut } : {}),
    };
    yield* writeFileAtomic(
      `${opts.runDir}/summary.json`,
      JSON.stringify(Schema.encodeSync(Summary)(summary), null, 2) + "\n",
    );
    reporter.log("");
    reporter.log(formatStepsTable(summary.steps));
    reporter.log("");
    reporter.log(formatMetricsTable(summary.models));
    reporter.log("");
    reporter.log(`summary: ${opts.runDir}/summary.json (${summary.seconds.toFixed(1)}s)`);
    return summary;
  }));

/** `verify` hashes every file in full (status --verify) instead of trusting unchanged stats. */
export const showStatus = (pipeline: Pipeline, runDir: string, verify = false) =>
  Effect.gen(function* () {
    const states = yield* pipelineStatus(pipeline, storeFor(runDir), verify);
    const words = {
      cached: "cached",
      partial: "interrupted: will resume from its checkpoint",
      pending: "to run",
      blocked: "to run (after its inputs)",
      corrupt: "corrupt: will be recomputed",
    };
    console.log(`pipeline ${pipeline.name} in ${runDir}${verify ? " (every file verified)" : ""}`);
    for (const s of states) {
      const why = s.reason ? ` (${s.reason})` : "";
      console.log(`  ${s.node.name.padEnd(24)} ${words[s.state]}${why}${s.key ? `  (${s.key})` : ""}`);
    }
  });
