/**
 * Accuracy per seed and paired differences with intervals, for runs of one pipeline at several seeds
 * (for example `deno task pipeline rftt --seed S --run-dir DIR_S`): reads each run directory's evaluate
 * artifacts (the node `eval-<model>`, its predictions.jsonl), prints a Markdown table of accuracy per seed
 * and the mean, then, for each `A-B` pair, mean(A - B) with the report's paired bootstrap interval
 * (src/report/stats.ts: resampling seeds and test examples).
 *
 *   deno run --allow-read tools/seed_table.ts --models a,b,c --compare a-b,c-b DIR_0 DIR_1 DIR_2
 *
 * A run may also be one seed of a comparison run (`deno task pipeline compare`): `DIR::arith/s0` reads the
 * evaluations `arith/s0/<method>/eval-<model>` of that run directory.
 */
import { DEFAULT_BOOTSTRAP, pairedBootstrap } from "../src/report/stats.ts";

const flag = (name: string): string | undefined => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const models = (flag("--models") ?? "").split(",").filter((m) => m !== "");
const pairs = (flag("--compare") ?? "").split(",").filter((p) => p !== "").map((p) => p.split("-vs-"));
const runs = Deno.args.filter((a, i) => !a.startsWith("--") && !Deno.args[i - 1]?.startsWith("--"));
const unknown = pairs.flat().filter((m) => !models.includes(m));
if (unknown.length > 0) {
  console.error(`--compare names ${unknown.join(", ")}, which --models does not list`);
  Deno.exit(2);
}
if (models.length === 0 || runs.length === 0) {
  console.error("usage: tools/seed_table.ts --models a,b --compare a-vs-b DIR...");
  Deno.exit(2);
}

/** Per-example correctness (1/0) of `model` in a run directory, in test-file order. */
const scores = (run: string, model: string): number[] => {
  const [dir, prefix] = run.split("::");
  const wanted = (node: string | undefined) =>
    prefix === undefined
      ? node === `eval-${model}`
      : node !== undefined && node.startsWith(`${prefix}/`) && node.endsWith(`/eval-${model}`) &&
        node.split("/").length === prefix.split("/").length + 2;
  for (const e of Deno.readDirSync(`${dir}/artifacts/evaluate`)) {
    const art = `${dir}/artifacts/evaluate/${e.name}`;
    let node: string | undefined;
    try {
      node = JSON.parse(Deno.readTextFileSync(`${art}/manifest.json`)).node;
    } catch {
      continue; // an unfinished artifact
    }
    if (!wanted(node)) continue;
    const rows = Deno.readTextFileSync(`${art}/predictions.jsonl`).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const line = (r: { source: string }) => Number(r.source.slice(r.source.lastIndexOf(":") + 1));
    return rows.sort((a, b) => line(a) - line(b)).map((r) => (r.correct ? 1 : 0));
  }
  throw new Error(`${run}: no evaluation of ${model}`);
};

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const table = new Map(models.map((m) => [m, runs.map((r) => scores(r, m))]));
const accuracy = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`| model | ${runs.map((r) => r.split("/").at(-1)).join(" | ")} | mean |`);
console.log(`| --- |${" ---: |".repeat(runs.length + 1)}`);
for (const [m, perSeed] of table) {
  const accs = perSeed.map(accuracy);
  console.log(`| ${m} | ${accs.map(pct).join(" | ")} | ${pct(accuracy(accs))} |`);
}
if (pairs.length > 0) {
  console.log(`\n| comparison | mean difference | ${DEFAULT_BOOTSTRAP.level * 100}% interval |`);
  console.log("| --- | ---: | --- |");
  for (const [a, b] of pairs) {
    const d = pairedBootstrap(table.get(a)!, table.get(b)!);
    const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
    console.log(`| ${a} - ${b} | ${pts(d.diff)} pts | [${pts(d.lo)}, ${pts(d.hi)}] |`);
  }
}
