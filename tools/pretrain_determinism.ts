/**
 * Determinism check of `deno task pipeline pretrain`: recomputes the first 20 steps of each training leg in
 * the run directory of a finished run (the cached corpus, tokenizer and blocks are reused) and compares
 * their losses with the finished run's train_log.jsonl. Warm-up is longer than 20 steps, so the learning
 * rates of the first 20 steps do not depend on a leg's length.
 *
 *   npx -y deno@2.9.6 run -A tools/pretrain_determinism.ts RUN_DIR
 */
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import { validate } from "../src/engine/pipeline.ts";
import { runPipeline } from "../src/engine/runner.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { storeFor } from "../src/cli/run.ts";
import { build, FULL_PLAN } from "../pipelines/pretrain.ts";

const runDir = Deno.args[0] ?? "runs/pretrain";
const backend = await Effect.runPromise(useBackend("cpu-blas"));
const run = async (budget: { stageOneSteps?: number; stageTwoSteps?: number }, keep: string[]) => {
  const full = build({ budget });
  // The sources (the tasks whose questions the corpus excludes) and the corpus steps, then the legs kept.
  const wanted = (n: (typeof full.nodes)[number]) =>
    n.kind === "source" || ["corpus", "tokenizer", "corpus-tokens", "train-blocks"].includes(n.name) ||
    keep.includes(n.name);
  const p = validate({ ...full, nodes: full.nodes.filter(wanted) });
  const r = await Effect.runPromise(
    Effect.scoped(runPipeline(p, { store: storeFor(runDir), reporter: silentReporter(), backend })),
  );
  return r.outputs;
};
const rows = async (dir: string) =>
  (await Deno.readTextFile(`${dir}/train_log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).loss as number
  );
const legs = FULL_PLAN.more ? ["base", "base-more"] : ["base"];
const fullRun = await run({}, legs);
const pairs: Array<[string, string, string]> = [
  ["leg 1", (await run({ stageOneSteps: 20 }, ["base"])).get("base")!, fullRun.get("base")!],
];
if (FULL_PLAN.more) {
  const b = await run({ stageTwoSteps: 20 }, legs);
  pairs.push(["leg 2", b.get("base-more")!, fullRun.get("base-more")!]);
}
for (const [name, short, long] of pairs) {
  const x = await rows(short), y = (await rows(long)).slice(0, 20);
  const maxDiff = Math.max(...x.map((v, i) => Math.abs(v - y[i])));
  console.log(
    name,
    "identical:",
    JSON.stringify(x) === JSON.stringify(y),
    "max |diff|",
    maxDiff,
    "first",
    x[0],
    y[0],
    "last",
    x[19],
    y[19],
  );
}
