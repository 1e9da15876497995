/**
 * The paths the README promises a user, run end to end through the launcher as `deno task pipeline` and
 * `deno task eval` start it, on tiny data and budgets:
 * - a tokenizer directory (tokenizer.json, or vocab.json + merges.txt with tokenizer_config.json) trains,
 *   and the trained checkpoint carries exactly the tokenizer files that were used;
 * - `--model DIR` alone finds the directory's tokenizer, whichever layout it has;
 * - `deno task eval` scores any checkpoint as the pipeline's own evaluation does, and with --samples k
 *   reports pass@j and majority vote consistent with the samples it wrote.
 */
import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";
import { cli, root } from "./bad_input_cases.ts";

const TRAIN = '{"prompt":"What is 1 + 1?","response":"<Thinking>1+1=2</Thinking><Answer>2</Answer>"}';
const OTHER = '{"prompt":"What is 2 + 1?","response":"<Thinking>2+1=3</Thinking><Answer>3</Answer>"}';

/** One row repeated: 25 steps make a 2-layer model answer it, so evaluation has answers to score. */
const memoryData = async (dir: string) => {
  await Deno.writeTextFile(`${dir}/train.jsonl`, `${Array(8).fill(TRAIN).join("\n")}\n`);
  await Deno.writeTextFile(`${dir}/test.jsonl`, `${TRAIN}\n${OTHER}\n${OTHER}\n`);
};

/** A byte-level GPT-2-style vocab.json + merges.txt (every byte, no merges) with a tokenizer_config.json. */
const bytePairDir = async (dir: string) => {
  await Deno.mkdir(dir);
  const printable: number[] = [];
  for (let b = 0; b < 256; b++) {
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) printable.push(b);
  }
  const symbols = printable.map((b) => String.fromCharCode(b));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) symbols.push(String.fromCharCode(256 + n++));
  const vocab = Object.fromEntries([...symbols, "<|endoftext|>"].map((t, i) => [t, i]));
  await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify(vocab));
  await Deno.writeTextFile(`${dir}/merges.txt`, "#version: 0.2\n");
  await Deno.writeTextFile(
    `${dir}/tokenizer_config.json`,
    JSON.stringify({ tokenizer_class: "GPT2Tokenizer", eos_token: "<|endoftext|>" }),
  );
};

const ok = async (args: string[]) => {
  const r = await cli(args);
  assertEquals(r.code, 0, `${args.join(" ")}\n${r.stdout}\n${r.stderr}`);
  return r;
};

const filesOf = async (dir: string) => {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
};

/** The model/ directory of the one finished train artifact of a run. */
const trainedModel = async (runDir: string) => {
  const done = (await filesOf(`${runDir}/artifacts/train`)).filter((n) => !n.includes("."));
  assertEquals(done.length, 1, done.join(", "));
  return `${runDir}/artifacts/train/${done[0]}/model`;
};

const summaryOf = async (runDir: string) =>
  JSON.parse(await Deno.readTextFile(`${runDir}/summary.json`)) as {
    models: Record<string, Record<string, unknown>>;
    steps: Array<{ name: string; status: string }>;
  };

const budget = ["--stage-one-steps", "20", "--stage-two-steps", "5", "--batch-size", "4", "--backend", "cpu"];
/** For runs that only have to get through training and saving. */
const tinyBudget = [
  "--stage-one-steps",
  "1",
  "--stage-two-steps",
  "1",
  "--batch-size",
  "4",
  "--backend",
  "cpu",
];

Deno.test("tokenizer directories train, --model DIR finds its tokenizer, and eval scores the checkpoint", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-user-paths-" });
  try {
    await memoryData(dir);
    const data = ["--data", `${dir}/train.jsonl`, "--test", `${dir}/test.jsonl`, "--format", "tags"];
    let jsonModel = "";
    await t.step(
      "--tokenizer DIR with tokenizer.json: the checkpoint carries it and its config",
      async () => {
        await Deno.mkdir(`${dir}/tok`);
        for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
          await Deno.copyFile(`${root}/fixtures/arith/${f}`, `${dir}/tok/${f}`);
        }
        await ok(["run", "sft", ...data, "--tokenizer", `${dir}/tok`, ...budget, "--run-dir", `${dir}/r1`]);
        jsonModel = await trainedModel(`${dir}/r1`);
        assertEquals(await filesOf(jsonModel), [
          "config.json",
          "model.safetensors",
          "tokenizer.json",
          "tokenizer_config.json",
        ]);
      },
    );

    let pairModel = "";
    await t.step(
      "--tokenizer DIR with vocab.json + merges.txt: the checkpoint carries exactly those",
      async () => {
        await bytePairDir(`${dir}/pair`);
        await ok([
          "run",
          "sft",
          ...data,
          "--tokenizer",
          `${dir}/pair`,
          ...tinyBudget,
          "--run-dir",
          `${dir}/r2`,
        ]);
        pairModel = await trainedModel(`${dir}/r2`);
        assertEquals(await filesOf(pairModel), [
          "config.json",
          "merges.txt",
          "model.safetensors",
          "tokenizer_config.json",
          "vocab.json",
        ]);
      },
    );

    await t.step("--model DIR alone: the directory's vocab.json + merges.txt tokenize the data", async () => {
      const r = await ok([
        "run",
        "sft",
        ...data,
        "--model",
        pairModel,
        ...tinyBudget,
        "--run-dir",
        `${dir}/r3`,
      ]);
      // Byte-level, one token per byte: the prompt "What is 1 + 1?\n" is 15 tokens.
      const tokens = JSON.parse(
        (await Deno.readTextFile(
          `${dir}/r3/artifacts/tokenise/${
            (await filesOf(`${dir}/r3/artifacts/tokenise`)).find((n) => !n.includes("."))
          }/tokens.jsonl`,
        )).split("\n")[0],
      ) as { prompt_length: number };
      assertEquals(tokens.prompt_length, 15, r.stdout);
      assertEquals(await filesOf(await trainedModel(`${dir}/r3`)), await filesOf(pairModel));
    });

    await t.step("eval --model: the pipeline's own numbers for the same checkpoint", async () => {
      await ok([
        "eval",
        "--model",
        jsonModel,
        "--data",
        `${dir}/test.jsonl`,
        "--format",
        "tags",
        "--backend",
        "cpu",
        "--run-dir",
        `${dir}/e1`,
      ]);
      const pipeline = (await summaryOf(`${dir}/r1`)).models.sft;
      const evaluated = (await summaryOf(`${dir}/e1`)).models.model;
      assertEquals(evaluated.n, 3);
      // The memorised answer is found, so the comparison is not between two zeros.
      assert((evaluated.format_rate as number) > 0, JSON.stringify(evaluated));
      assertEquals(evaluated.accuracy, pipeline.accuracy);
      assertEquals(evaluated.format_rate, pipeline.format_rate);
      assertAlmostEquals(evaluated.key_loss as number, pipeline.key_loss as number, 1e-6);
    });

    await t.step(
      "eval --samples 4 --temperature 1: pass@j and majority vote agree with the samples",
      async () => {
        const args = [
          "eval",
          "--model",
          jsonModel,
          "--data",
          `${dir}/test.jsonl`,
          "--format",
          "tags",
          "--samples",
          "4",
          "--temperature",
          "1",
          "--seed",
          "3",
          "--backend",
          "cpu",
          "--run-dir",
          `${dir}/e2`,
        ];
        await ok(args);
        const m = (await summaryOf(`${dir}/e2`)).models.model as {
          accuracy: number;
          pass_at: Record<string, number>;
          majority_accuracy: number;
          samples: number;
        };
        assertEquals(m.samples, 4);
        assertEquals(Object.keys(m.pass_at).sort(), ["1", "2", "4"]);
        const evalDir = (await filesOf(`${dir}/e2/artifacts/evaluate`)).find((n) => !n.includes("."));
        const predictions =
          (await Deno.readTextFile(`${dir}/e2/artifacts/evaluate/${evalDir}/predictions.jsonl`))
            .split("\n").filter((l) => l).map((l) =>
              JSON.parse(l) as {
                gold: string;
                majority: string | null;
                samples: Array<{ predicted: string | null; correct: boolean }>;
              }
            );
        assertEquals(predictions.map((p) => p.samples.length), [4, 4, 4]);
        // pass@j by enumerating every j-subset of each prompt's 4 samples.
        for (const j of [1, 2, 4]) {
          let sum = 0;
          for (const p of predictions) {
            let subsets = 0, hit = 0;
            for (let mask = 0; mask < 16; mask++) {
              const chosen = p.samples.filter((_, i) => mask & (1 << i));
              if (chosen.length !== j) continue;
              subsets++;
              if (chosen.some((s) => s.correct)) hit++;
            }
            sum += hit / subsets;
          }
          assertAlmostEquals(m.pass_at[String(j)], sum / predictions.length, 1e-9, `pass@${j}`);
        }
        const correct = predictions.flatMap((p) => p.samples).filter((s) => s.correct).length;
        assertAlmostEquals(m.accuracy, correct / 12, 1e-12);
        // Majority: the most frequent extracted answer of each prompt.
        for (const p of predictions) {
          const counts = new Map<string, number>();
          for (const s of p.samples) {
            if (s.predicted !== null) counts.set(s.predicted, (counts.get(s.predicted) ?? 0) + 1);
          }
          const top = Math.max(0, ...counts.values());
          if (top === 0) assertEquals(p.majority, null);
          else assertEquals(counts.get(p.majority!), top, JSON.stringify(p));
        }
        assertAlmostEquals(
          m.majority_accuracy,
          predictions.filter((p) => p.majority === p.gold).length / predictions.length,
          1e-12,
        );
        // The same seeded command is the same node: its result is reused.
        const again = await ok(args);
        assert(/eval-model\s+cached/.test(again.stdout), again.stdout);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
