/**
 * TRL export: every training stage of a pipeline becomes `input_ids` + 0/1 `completion_mask` rows equal to
 * the masked artifact the stage trains on, stages.json records the order, and masks TRL cannot express
 * (fractional weights) are refused rather than rounded.
 */
import { assert, assertEquals } from "./assert.ts";
import { Cause, Effect, Exit, Option } from "effect";
import { exportPipeline, runExport } from "../src/cli/export.ts";
import { trlRow } from "../src/steps/export_trl.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import type { MaskedRecord } from "../src/data/records.ts";
import { build as buildSftkey } from "../pipelines/sftkey.ts";
import { build as buildMix } from "../pipelines/mix.ts";

const readRows = async <T>(path: string): Promise<T[]> =>
  (await Deno.readTextFile(path)).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as T);

const withDirs = async (f: (run: string, out: string) => Promise<void>) => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-export-" });
  try {
    await f(`${dir}/run`, `${dir}/out`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
};

Deno.test("trlRow: 0/1 weights become the completion mask; other weights are refused", () => {
  const base = { source: "f:1", input_ids: [5, 6, 7], prompt_length: 1, key: { start: 2, end: 3 } };
  const row = { ...base, answer_part: { start: 2, end: 3 }, answer: "7" };
  assertEquals(trlRow({ ...row, weights: [0, 1, 1] }), { input_ids: [5, 6, 7], completion_mask: [0, 1, 1] });
  assertEquals(trlRow({ ...row, weights: [0, 0.5, 1] }), undefined);
  assertEquals(trlRow({ ...row, weights: [0, 2, 1] }), undefined);
});

Deno.test("exportPipeline keeps data preparation only and adds one export per training node", () => {
  const p = buildSftkey({ quick: true });
  const { pipeline, stages } = exportPipeline(p);
  assertEquals(stages.map((s) => s.node), ["sftkey-stage-one", "sftkey-stage-two", "sft"]);
  const steps = new Set(pipeline.nodes.flatMap((n) => n.kind === "step" ? [n.step.name] : []));
  assertEquals([...steps].sort(), ["buildMasks", "exportTrl", "locateKey", "tokenise"]);
});

Deno.test("export on the fixtures: each stage file equals its masked artifact, stage two starts from one", () =>
  withDirs(async (run, out) => {
    const pipeline = buildSftkey({ quick: true });
    await Effect.runPromise(runExport(pipeline, { runDir: run, out }));
    const stages = JSON.parse(await Deno.readTextFile(`${out}/stages.json`));
    assertEquals(stages.map((s: { stage: string }) => s.stage), [
      "sftkey-stage-one",
      "sftkey-stage-two",
      "sft",
    ]);
    assertEquals(stages[0].start, { fresh: true });
    assertEquals(stages[1].start, { stage: "sftkey-stage-one" });
    assertEquals(stages[1].mask, { mask: { kind: "answer" } });

    type Row = { input_ids: number[]; completion_mask: number[] };
    const one = await readRows<Row>(`${out}/sftkey-stage-one.jsonl`);
    const two = await readRows<Row>(`${out}/sftkey-stage-two.jsonl`);
    assertEquals(Object.keys(one[0]).sort(), ["completion_mask", "input_ids"]);
    // The rows are the masked artifacts the training nodes read.
    const { stages: plan } = exportPipeline(pipeline);
    const maskDir = async (node: string) => {
      const entries = [...Deno.readDirSync(`${run}/artifacts/buildMasks`)].map((e) => e.name);
      for (const key of entries) {
        const manifest = JSON.parse(
          await Deno.readTextFile(`${run}/artifacts/buildMasks/${key}/manifest.json`),
        );
        if (manifest.node === node) return `${run}/artifacts/buildMasks/${key}`;
      }
      throw new Error(`no artifact of ${node}`);
    };
    const masked = await readRows<MaskedRecord>(`${await maskDir(plan[1].maskNode)}/masked.jsonl`);
    assertEquals(two.length, masked.length);
    assertEquals(two.map((r) => r.completion_mask), masked.map((r) => [...r.weights]));

    const tok = await Effect.runPromise(
      loadTokenizer(new URL("../fixtures/arith/tokenizer.json", import.meta.url).pathname),
    );
    for (let i = 0; i < one.length; i++) {
      assertEquals(one[i].input_ids, two[i].input_ids);
      // Stage two trains on a part of what stage one trains on: the answer part, ending with EOS.
      assert(two[i].completion_mask.every((m, t) => m <= one[i].completion_mask[t]));
      const trained = two[i].input_ids.filter((_, t) => two[i].completion_mask[t] === 1);
      const text = tok.decode(trained);
      assert(text.startsWith("<Answer>") && text.endsWith("</Answer><|endoftext|>"), text);
    }
  }));

Deno.test("a rerun leaves the files it wrote alone, and rewrites one that was changed or removed", () =>
  withDirs(async (run, out) => {
    const pipeline = buildSftkey({ quick: true });
    await Effect.runPromise(runExport(pipeline, { runDir: run, out }));
    const files = ["sftkey-stage-one.jsonl", "sftkey-stage-two.jsonl", "sft.jsonl"];
    const original = new Map(files.map((f) => [f, Deno.readTextFileSync(`${out}/${f}`)]));
    const stat = (f: string) => {
      const i = Deno.statSync(`${out}/${f}`);
      return { ino: i.ino, mtime: i.mtime?.getTime(), ctime: i.ctime?.getTime() };
    };
    const first = new Map(files.map((f) => [f, stat(f)]));

    await Effect.runPromise(runExport(pipeline, { runDir: run, out }));
    for (const f of files) assertEquals(stat(f), first.get(f), `${f} was written again`);

    // Changed in place (same size: the first byte of a row), and removed: both are written again.
    const one = `${out}/sftkey-stage-one.jsonl`;
    const bytes = Deno.readFileSync(one);
    bytes[0] = "[".charCodeAt(0);
    Deno.writeFileSync(one, bytes);
    Deno.removeSync(`${out}/sft.jsonl`);
    await Effect.runPromise(runExport(pipeline, { runDir: run, out }));
    for (const f of files) assertEquals(Deno.readTextFileSync(`${out}/${f}`), original.get(f), f);
    assertEquals(stat("sftkey-stage-two.jsonl"), first.get("sftkey-stage-two.jsonl"));

    // A stages.json this version cannot read only costs the copies.
    Deno.writeTextFileSync(`${out}/stages.json`, "{not json");
    await Effect.runPromise(runExport(pipeline, { runDir: run, out }));
    assert(stat("sftkey-stage-two.jsonl").ino !== first.get("sftkey-stage-two.jsonl")!.ino);
    for (const f of files) assertEquals(Deno.readTextFileSync(`${out}/${f}`), original.get(f), f);
  }));

Deno.test("a mask with fractional weights (mix) is refused, naming the example", () =>
  withDirs(async (run, out) => {
    const exit = await Effect.runPromiseExit(runExport(buildMix({ quick: true }), { runDir: run, out }));
    assert(Exit.isFailure(exit));
    const failure = Option.getOrThrow(Cause.failureOption(exit.cause)) as {
      _tag: string;
      error: { _tag: string; reason: string };
    };
    assertEquals([failure._tag, failure.error._tag], ["StepFailed", "InvalidConfig"]);
    assert(failure.error.reason.includes("has loss weight 0.5"), failure.error.reason);
  }));

Deno.test("the export command (through the launcher): --data file, a vocab.json + merges.txt --tokenizer directory", () =>
  withDirs(async (run, out) => {
    const root = new URL("..", import.meta.url).pathname;
    // A GPT-2-style pair written from the fixture tokenizer, so the directory has no tokenizer.json.
    const tokDir = `${run}-tokenizer`;
    await Deno.mkdir(tokDir, { recursive: true });
    const json = JSON.parse(await Deno.readTextFile(`${root}fixtures/arith/tokenizer.json`));
    await Deno.writeTextFile(`${tokDir}/vocab.json`, JSON.stringify(json.model.vocab));
    await Deno.writeTextFile(`${tokDir}/merges.txt`, json.model.merges.join("\n") + "\n");
    // As `deno task export` starts it: the launcher, main.ts with permissions scoped to these paths.
    const launcher = [
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-env",
      "--allow-run",
      "src/cli/launch.ts",
    ];
    const args = [...launcher, "export", "sftkey", "--data", "fixtures/gsm8k-mini/train.jsonl"];
    args.push("--format", "gsm8k", "--tokenizer", tokDir, "--quick", "--run-dir", run, "--out", out);
    const result = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const text = new TextDecoder().decode(result.stderr) + new TextDecoder().decode(result.stdout);
    assertEquals(result.code, 0, text);
    const rows = (await Deno.readTextFile(`${out}/sftkey-stage-two.jsonl`)).split("\n").filter((l) => l);
    // Without --test, 10% of the 1000 rows are held out for evaluation: the export is what trains.
    assertEquals(rows.length, 900);
    // Run again into the existing output directory: it is rewritten, not rejected.
    const again = await new Deno.Command(Deno.execPath(), { args, cwd: root, stdout: "null", stderr: "null" })
      .output();
    assertEquals(again.code, 0);
    await Deno.remove(tokDir, { recursive: true });
  }));
