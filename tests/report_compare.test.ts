/**
 * End to end: the comparison pipeline over every registered method (the RFTT arms only with SFTKEY_SLOW=1:
 * their RL runs and long-trace evaluations added about 100 s here; tests/rftt_pipeline.test.ts runs them end
 * to end in the default tier), 2 seeds (3 with SFTKEY_SLOW=1) and
 * both embedded datasets, on a tiny slice with a tiny budget, through the CLI's entry point. It must write
 * report.md/html with every method, charts and the mask viewer (with the RFTT arms: their RL curves and
 * the test-time search's scaling chart); share identical nodes through the cache;
 * state significance in agreement with its own intervals; and, run again, reuse everything, the report
 * included.
 */
import { Effect } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { runAndSummarise } from "../src/cli/run.ts";
import { useBackend } from "../src/backend/backend.ts";
import { build } from "../pipelines/compare.ts";
import { methods as registry, RFTT_METHODS } from "../pipelines/methods.ts";
import type { PipelineOptions } from "../pipelines/data.ts";

/** Three seeds as in the real comparison in the slow tier; two keep the default suite fast. */
const SLOW = Deno.env.get("SFTKEY_SLOW") === "1";
const SEEDS = SLOW ? [0, 1, 2] : [0, 1];
const methods = SLOW
  ? registry
  : Object.fromEntries(Object.entries(registry).filter(([name]) => !RFTT_METHODS.includes(name)));

const tiny: PipelineOptions = {
  limit: { train: 16, test: 6 },
  budget: {
    stageOneSteps: 2,
    stageTwoSteps: 1,
    train: { batchSize: 4, microBatchSize: 4, warmupSteps: 0, checkpointEvery: 10 },
  },
};

const quietly = <A>(f: () => Promise<A>): Promise<A> => {
  const log = console.log;
  console.log = () => {};
  return f().finally(() => (console.log = log));
};

const run = (runDir: string) =>
  quietly(() =>
    Effect.runPromise(
      Effect.flatMap(
        useBackend("cpu"),
        (backend) => runAndSummarise(build(tiny, { seeds: SEEDS, methods }), { runDir, force: [], backend }),
      ),
    )
  );

interface ReportJson {
  baseline: string;
  sentences: string[];
  comparisons: Array<{ dataset: string; model: string; lo: number; hi: number; significant: boolean }>;
  rows: Array<{ dataset: string; method: string; model: string; seeds: number[]; tokens: number }>;
  models: Array<{ dataset: string; method: string; model: string; seed: number }>;
}

Deno.test("compare: every method x seeds x 2 datasets, one report, cached on the second run", async () => {
  const dir = await Deno.makeTempDir();
  const first = await run(`${dir}/run`);
  const read = (f: string) => Deno.readTextFile(`${dir}/run/${f}`);
  const report = JSON.parse(await read("report.json")) as ReportJson;

  // Every registered method, on both datasets, with all three seeds.
  for (const dataset of ["arith", "gsm8k"]) {
    for (const method of Object.keys(methods)) {
      const seeds = report.models.filter((m) => m.dataset === dataset && m.method === method).map((m) =>
        m.seed
      );
      assertEquals([...new Set(seeds)].sort(), SEEDS, `${dataset}/${method}`);
    }
  }
  const md = await read("report.md");
  const html = await read("report.html");
  for (const row of report.rows) {
    assert(md.includes(`| ${row.model} | ${row.method} |`), `report.md lacks ${row.model}`);
    assert(html.includes(`>${row.model}</td>`), `report.html lacks ${row.model}`);
    assertEquals(row.seeds, SEEDS);
    assert(row.tokens > 0, `${row.model} trained no tokens`);
  }
  // Each model except the baseline is compared with it on each dataset.
  assertEquals(report.comparisons.length, report.rows.filter((r) => r.model !== report.baseline).length);

  // The statement agrees with the intervals.
  for (const c of report.comparisons) {
    const sentence = report.sentences.find((s) => s.startsWith(`On ${c.dataset},`))!;
    assertEquals(sentence.includes(`${c.model} is significantly better`), c.lo > 0, sentence);
    assertEquals(sentence.includes(`${c.model} is significantly worse`), c.hi < 0, sentence);
    assertEquals(c.significant, c.lo > 0 || c.hi < 0);
  }

  // Charts inline, a mask viewer section per method and dataset, nothing fetched from the network.
  assert((html.match(/<svg /g) ?? []).length >= 2);
  for (const method of Object.keys(methods)) {
    for (const dataset of ["arith", "gsm8k"]) assert(html.includes(`<h4>${method} on ${dataset} `), method);
  }
  assert(/<span class="t w" style="background:/.test(html), "no weighted token in the mask viewer");
  assert(!/<script|<link|<img|url\((?!#)|@import/.test(html), "the report must be self-contained");
  // Ids are unique across the inlined charts (Vega numbers its clip paths from 1 in every chart).
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
  assertEquals(ids.length, new Set(ids).size);
  assert((await read("accuracy.svg")).startsWith("<svg"));
  assert((await read("loss.svg")).startsWith("<svg"));
  // With the RFTT arms: their RL curves and the test-time search's scaling, per dataset, in the report.
  if (SLOW) {
    for (const dataset of ["arith", "gsm8k"]) {
      for (const [file, title] of [["rl_curves", "RL per update"], ["scaling", "test-time search"]]) {
        assert((await read(`${dataset}-${file}.svg`)).startsWith("<svg"), `${dataset}-${file}.svg`);
        assert(md.includes(`(${dataset}-${file}.svg)`) && md.includes(`${dataset}: ${title}`), file);
        assert(html.includes(`${dataset}: ${title}`), file);
      }
      const votes = first.steps.filter((s) => s.name.startsWith(`${dataset}/`) && /\/vote-rftt/.test(s.name));
      assertEquals(votes.length, 2 * SEEDS.length, dataset);
    }
  }

  // Identical training nodes (e.g. the response-only first stage several methods start from) ran once.
  const trains = first.steps.filter((s) => s.step === "train");
  assert(trains.some((s) => s.status === "cached"), "no training node was shared");
  assertEquals(
    new Set(trains.filter((s) => s.status === "ran").map((s) => s.key)).size,
    trains.filter((s) => s.status === "ran").length,
  );

  const second = await run(`${dir}/run`);
  const notCached = second.steps.filter((s) => s.status !== "cached").map((s) => s.name);
  assertEquals(notCached, []);
  assertEquals(await read("report.md"), md);
  await Deno.remove(dir, { recursive: true });
});
