/**
 * `deno task pipeline --jobs N` through the launcher: the steps computed on worker threads give artifacts
 * bit-identical to a run of one step at a time (every node's content digest equal), on cpu-blas, where each
 * worker loads its own copy of OpenBLAS (two threads calling one copy drifted apart: src/cli/workers.ts),
 * and the copies are gone after the run. A --jobs below 1 is refused naming the flag.
 */
import { findBlas } from "../src/backend/blas.ts";
import { assert, assertEquals } from "./assert.ts";
import { cli } from "./bad_input_cases.ts";

const pipeline = (args: string[]) => cli(["run", ...args]);

/** Every artifact's content digest, by step and key. */
const digests = async (runDir: string): Promise<Record<string, string>> => {
  const out: Record<string, string> = {};
  for await (const step of Deno.readDir(`${runDir}/artifacts`)) {
    if (!step.isDirectory) continue;
    for await (const key of Deno.readDir(`${runDir}/artifacts/${step.name}`)) {
      const manifest = `${runDir}/artifacts/${step.name}/${key.name}/manifest.json`;
      const text = await Deno.readTextFile(manifest).catch(() => undefined);
      if (text !== undefined) out[`${step.name}/${key.name}`] = JSON.parse(text).digest;
    }
  }
  return out;
};

Deno.test("--jobs 2 computes the same artifacts, bit for bit, as one step at a time", async () => {
  // Without OpenBLAS the same check runs on the cpu backend (no library copies to make).
  const backend = findBlas() !== undefined ? "cpu-blas" : "cpu";
  const one = await Deno.makeTempDir();
  const two = await Deno.makeTempDir();
  // CFT: its stage one and the SFT baseline train side by side, then the critical-token search and CFT.
  const a = await pipeline(["cft", "--quick", "--backend", backend, "--run-dir", one]);
  assertEquals(a.code, 0, a.stderr);
  const b = await pipeline(["cft", "--quick", "--backend", backend, "--run-dir", two, "--jobs", "2"]);
  assertEquals(b.code, 0, b.stderr);
  assert(b.stdout.includes("jobs: up to 2 steps at once"), b.stdout);
  const [da, db] = [await digests(one), await digests(two)];
  for (const step of ["train/", "criticalTokens/", "evaluate/"]) {
    assert(Object.keys(da).some((k) => k.startsWith(step)), JSON.stringify(da));
  }
  assertEquals(db, da);
  const summary = (dir: string) => JSON.parse(Deno.readTextFileSync(`${dir}/summary.json`)).models;
  assertEquals(summary(two), summary(one));
  // The workers' copies of OpenBLAS are removed with them.
  assertEquals(Array.from(Deno.readDirSync(two)).map((e) => e.name).sort(), ["artifacts", "summary.json"]);
});

Deno.test("--jobs below 1 is refused naming the flag", async () => {
  const r = await pipeline(["sftkey", "--quick", "--jobs", "0", "--run-dir", await Deno.makeTempDir()]);
  assert(r.code !== 0);
  assert(`${r.stdout}\n${r.stderr}`.includes("--jobs must be at least 1"), `${r.stdout}\n${r.stderr}`);
});
