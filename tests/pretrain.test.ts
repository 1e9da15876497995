/**
 * Pretraining (pipelines/pretrain.ts): the synthetic corpus, its reader, the single-digit tokenizer, BF16
 * checkpoints, and the quick pipeline end to end — packed blocks are the documents joined by EOS with every
 * weight 1, the loss falls, the held-out perplexity is the exponential of the held-out loss, the shipped
 * checkpoint is BF16, and the loss chart is published.
 */
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import { tokenizerJson, trainBpe } from "../src/data/bpe.ts";
import { FORMAT_MARKERS, readCorpus, syntheticDocument } from "../src/data/corpus.ts";
import type { MaskedRecord } from "../src/data/records.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { InvalidRow } from "../src/errors.ts";
import { runPipeline } from "../src/engine/runner.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { loadCheckpoint } from "../src/model/checkpoint.ts";
import { parseSafetensors, serializeSafetensors, toBf16 } from "../src/model/safetensors.ts";
import { storeFor } from "../src/cli/run.ts";
import { build, QUICK_PLAN } from "../pipelines/pretrain.ts";
import { assert, assertAlmostEquals, assertEquals, assertNotEquals, assertRejects } from "./assert.ts";

Deno.test("corpus generator: deterministic for its seed, different for another, never in a fine-tuning format", () => {
  const docs = (seed: number) => Array.from({ length: 300 }, (_, i) => syntheticDocument(seed, i).text);
  const a = docs(0);
  assertEquals(docs(0), a);
  const b = docs(1);
  assertNotEquals(b, a);
  // Not just a shuffle of the same documents.
  assert(b.filter((t) => a.includes(t)).length < 5);
  const kinds = new Set<string>();
  for (const seed of [0, 1, 2]) {
    for (let i = 0; i < 2000; i++) {
      const { kind, text } = syntheticDocument(seed, i);
      kinds.add(kind);
      for (const m of FORMAT_MARKERS) assert(!text.includes(m), `seed ${seed} document ${i} contains ${m}`);
    }
  }
  assertEquals([...kinds].sort(), [
    "chain",
    "equations",
    "facts",
    "table",
    "taskProblem",
    "wordProblem",
    "worked",
  ]);
});

Deno.test("corpus generator: task problems in prose, and never an excluded question", () => {
  // The fine-tuning tasks' problems (src/data/word_problems.ts) make up most documents, as prose.
  const docs = Array.from({ length: 400 }, (_, i) => syntheticDocument(5, i));
  const task = docs.filter((d) => d.kind === "taskProblem");
  assert(task.length > 0.5 * docs.length && task.length < 0.7 * docs.length, `${task.length} of 400`);
  // A question of a task document: the sentence run before the prose solution's "Let us work it out." etc.
  const questions = task.flatMap((d) =>
    [...d.text.matchAll(/^(?:Question: |Q: |Problem \d+\. )?(.+?\?)(?=\n| Let us work it out\.)/gm)].map((
      m,
    ) => m[1])
  );
  assert(questions.length >= task.length, `${questions.length} questions in ${task.length} documents`);
  // Excluding them: the same documents are drawn again, now without any of those questions.
  const exclude = new Set(questions);
  let changed = 0;
  for (let i = 0; i < docs.length; i++) {
    const again = syntheticDocument(5, i, exclude);
    assertEquals(again.kind, docs[i].kind);
    for (const q of exclude) assert(!again.text.includes(q), `document ${i} still asks: ${q}`);
    if (again.text !== docs[i].text) changed++;
  }
  assertEquals(changed, task.length);
  // Excluding nothing changes nothing.
  assertEquals(syntheticDocument(5, 7, new Set()).text, docs[7].text);
});

Deno.test("corpus generator: the arithmetic it writes is right", () => {
  // Every "a op b = c" with single spaces or none, in 1000 documents: c is what the operation gives.
  let checked = 0;
  for (let i = 0; i < 1000; i++) {
    const text = syntheticDocument(3, i).text;
    for (const m of text.matchAll(/(?<![\d.)])(\d+) ?([-+*x×/]) ?(\d+) ?= ?(\d+)(?![\d])/g)) {
      // The last two terms of a longer chain ("7 + 1 + 1 = 9") are not an equation of their own.
      if (/[-+*x×/(] ?$/.test(text.slice(0, m.index))) continue;
      const [x, op, y, z] = [Number(m[1]), m[2], Number(m[3]), Number(m[4])];
      const want = op === "+" ? x + y : op === "-" ? x - y : op === "/" ? x / y : x * y;
      assertEquals(z, want, `document ${i}: ${m[0]}`);
      checked++;
    }
  }
  assert(checked > 5000, `only ${checked} equations checked`);
});

Deno.test("readCorpus: JSONL rows and .txt files; a row without a text string names file, line and field", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a.jsonl`, '{"text": "one"}\n\n{"text": "two", "id": 2}\n');
  await Deno.writeTextFile(`${dir}/b.txt`, "three\nlines");
  await Deno.writeTextFile(`${dir}/notes.json`, "{}");
  const docs = await Effect.runPromise(readCorpus(dir));
  assertEquals(docs, [
    { source: `${dir}/a.jsonl:1`, text: "one" },
    { source: `${dir}/a.jsonl:3`, text: "two" },
    { source: `${dir}/b.txt`, text: "three\nlines" },
  ]);
  await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"text": "ok"}\n{"body": "no text"}\n');
  const e = await assertRejects(() => Effect.runPromise(readCorpus(`${dir}/bad.jsonl`))) as Error;
  assert(String(e).includes("InvalidRow") || e instanceof InvalidRow, String(e));
  const failure = await Effect.runPromise(Effect.flip(readCorpus(`${dir}/bad.jsonl`)));
  assertEquals(failure._tag, "InvalidRow");
  assertEquals(failure._tag === "InvalidRow" && [failure.line, failure.field], [2, "text"]);
});

Deno.test("single-digit BPE: every digit its own token, and decode(encode(x)) === x", async () => {
  const texts = Array.from({ length: 200 }, (_, i) => syntheticDocument(0, i).text);
  const merges = trainBpe(texts, 200, 2, "single");
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tokenizerJson(merges, "single")));
  const tok = await Effect.runPromise(loadTokenizer(`${dir}/tokenizer.json`));
  const ids = tok.encode("Maria has 1234 apples, 56+7=63.");
  const digitTokens = ids.map((id) => tok.tokenText(id)).filter((t) => /\d/.test(t));
  assertEquals(digitTokens, ["1", "2", "3", "4", "5", "6", "7", "6", "3"]);
  for (const t of [...texts.slice(0, 20), "<Thinking>7+5=12</Thinking><Answer>12</Answer>", "#### 72"]) {
    assertEquals(tok.decode(tok.encode(t)), t);
  }
  // The merges learned something: the text takes far fewer tokens than bytes.
  const sample = texts.slice(0, 20).join("\n");
  assert(tok.encode(sample).length < 0.6 * new TextEncoder().encode(sample).length);
});

Deno.test("BF16 safetensors: rounds to nearest even and reads back within bfloat16's precision", async () => {
  const values = Float32Array.from([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 0, 65504, 1e-3, NaN]);
  const halves = toBf16(values);
  assertEquals(halves[0], 0x3f80);
  assertEquals(halves[1], 0x3f80); // a tie rounds to the even neighbour
  assertEquals(halves[2], 0x3f82); // a tie rounds up to the even neighbour
  const bytes = serializeSafetensors(new Map([["w", { shape: [8], data: values }]]), {}, "BF16");
  const back = await Effect.runPromise(parseSafetensors(bytes, "mem"));
  assertEquals(back.dtypes.get("w"), "BF16");
  const data = back.tensors.get("w")!.data;
  for (let i = 0; i < 7; i++) assert(Math.abs(data[i] - values[i]) <= Math.abs(values[i]) * 2 ** -8, `${i}`);
  assert(Number.isNaN(data[7]));
});

Deno.test("pretrain --quick: EOS-joined blocks, every weight 1, falling loss, held-out perplexity, BF16 base", async () => {
  const dir = await Deno.makeTempDir();
  const pipeline = build({ quick: true });
  const log = console.log;
  console.log = () => {};
  const result = await Effect.runPromise(
    Effect.scoped(Effect.flatMap(
      useBackend("cpu"),
      (backend) => runPipeline(pipeline, { store: storeFor(dir), reporter: silentReporter(), backend }),
    )),
  ).finally(() => (console.log = log));
  const out = (node: string) => result.outputs.get(node)!;
  const jsonl = async <T>(path: string) =>
    (await Deno.readTextFile(path)).split("\n").filter((l) => l).map((l) => JSON.parse(l) as T);

  // Packing: the training blocks are the held-in documents' ids, each followed by EOS, cut into blocks.
  const { eosId } = JSON.parse(await Deno.readTextFile(`${out("corpus-tokens")}/report.json`));
  const docs = await jsonl<{ input_ids: number[] }>(`${out("corpus-tokens")}/documents.jsonl`);
  assertEquals(docs.length, QUICK_PLAN.documents);
  const stream = docs.filter((_, i) => i % QUICK_PLAN.heldOutEvery !== 0).flatMap((
    d,
  ) => [...d.input_ids, eosId]);
  const blocks = await jsonl<MaskedRecord>(`${out("train-blocks")}/masked.jsonl`);
  assertEquals(blocks.length, Math.floor(stream.length / QUICK_PLAN.blockLength));
  assertEquals(blocks.flatMap((b) => b.input_ids), stream.slice(0, blocks.length * QUICK_PLAN.blockLength));
  assert(blocks.every((b) => b.weights.length === QUICK_PLAN.blockLength && b.weights.every((w) => w === 1)));
  assert(blocks.some((b) => b.input_ids.includes(eosId)));
  const heldout = await jsonl<MaskedRecord>(`${out("heldout-blocks")}/masked.jsonl`);
  assert(heldout.length > 0 && heldout[0].input_ids[0] === docs[0].input_ids[0]);

  // The corpus is free of the fine-tuning formats and of the fine-tuning tasks' questions.
  const corpus = await Deno.readTextFile(`${out("corpus")}/corpus.jsonl`);
  for (const m of FORMAT_MARKERS) assert(!corpus.includes(m), m);
  const report = JSON.parse(await Deno.readTextFile(`${out("corpus")}/report.json`));
  assert(report.excludedQuestions >= 2990, String(report.excludedQuestions));
  for (const file of ["word-tags/train.jsonl", "word-tags/test.jsonl", "word-gsm8k/test.jsonl"]) {
    const rows = await jsonl<{ prompt?: string; question?: string }>(
      new URL(`../fixtures/${file}`, import.meta.url).pathname,
    );
    for (const r of rows) assert(!corpus.includes(JSON.stringify(r.prompt ?? r.question).slice(1, -1)), file);
  }

  // Training: the loss falls well below its start (log(vocab) for a fresh model).
  const trainLog = await jsonl<{ loss: number }>(`${out("base")}/train_log.jsonl`);
  assertEquals(trainLog.length, QUICK_PLAN.train.steps);
  const mean = (xs: { loss: number }[]) => xs.reduce((s, r) => s + r.loss, 0) / xs.length;
  assert(
    mean(trainLog.slice(-5)) < mean(trainLog.slice(0, 5)) - 0.5,
    JSON.stringify(trainLog.map((r) => r.loss)),
  );

  // The second leg continues from the first: it starts near where the first ended, far below a fresh start.
  const moreLog = await jsonl<{ loss: number }>(`${out("base-more")}/train_log.jsonl`);
  assertEquals(moreLog.length, QUICK_PLAN.more!.steps);
  assert(moreLog[0].loss < trainLog[0].loss - 0.5, `${moreLog[0].loss} vs ${trainLog[0].loss}`);

  // Held-out: perplexity = exp(loss), better than guessing uniformly over the vocabulary.
  const m = JSON.parse(await Deno.readTextFile(`${out("heldout")}/heldout_metrics.json`));
  assertAlmostEquals(m.perplexity, Math.exp(m.heldout_loss), 1e-9);
  assert(m.perplexity > 1 && m.perplexity < QUICK_PLAN.vocabSize / 2, String(m.perplexity));
  assertEquals(m.tokens, heldout.length * (QUICK_PLAN.blockLength - 1));

  // The shipped checkpoint: BF16 on disk, with the tokenizer, loading to the trained weights (rounded).
  const shipped = `${out("base-bf16")}/model`;
  const header = await Effect.runPromise(
    parseSafetensors(await Deno.readFile(`${shipped}/model.safetensors`), "x"),
  );
  assert([...header.dtypes.values()].every((d) => d === "BF16"));
  assert(await Deno.stat(`${shipped}/tokenizer.json`).then(() => true));
  const f32 = await Effect.runPromise(loadCheckpoint(`${out("base-more")}/model`));
  const bf16 = await Effect.runPromise(loadCheckpoint(shipped));
  const name = "model.embed_tokens.weight";
  const [a, b] = [f32.params.get(name)!.dataSync(), bf16.params.get(name)!.dataSync()];
  assertNotEquals(Array.from(a.slice(0, 8)), Array.from(b.slice(0, 8)));
  for (let i = 0; i < a.length; i += 97) assert(Math.abs(a[i] - b[i]) <= Math.abs(a[i]) * 2 ** -8);

  // The loss chart is an SVG of the curve.
  const svg = await Deno.readTextFile(`${out("loss-chart")}/loss_curve.svg`);
  assert(svg.startsWith("<svg") && svg.includes("training loss"));
  const spec = JSON.parse(await Deno.readTextFile(`${out("loss-chart")}/loss_curve.vl.json`));
  const steps = (spec.data.values as { step: number }[]).map((v) => v.step);
  assertEquals(Math.max(...steps), QUICK_PLAN.train.steps + QUICK_PLAN.more!.steps);
});
