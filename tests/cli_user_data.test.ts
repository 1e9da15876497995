/**
 * A user's own data through `deno task pipeline`, as typed (the launcher), on tiny budgets:
 * - `--data` without `--test` evaluates on a seeded held-out split that training never sees, says so, and
 *   records it in summary.json; `--eval-on-train` is the only way to score the training rows;
 * - `--on-missing-key drop` and `--on-truncated-key drop` drop those rows, counted and listed by file:line
 *   in the steps' reports and in summary.json;
 * - `--format messages` with `--locator` trains and scores answers extracted from chat generations.
 */
import { assert, assertEquals } from "./assert.ts";
import { cli, root } from "./bad_input_cases.ts";
import { heldOutIndices } from "../src/steps/hold_out.ts";

const ok = async (args: string[]) => {
  const r = await cli(args);
  assertEquals(r.code, 0, `${args.join(" ")}\n${r.stdout}\n${r.stderr}`);
  return r;
};

interface Summary {
  steps: Array<{ name: string; step: string; key: string }>;
  models: Record<string, { n: number; format_rate: number; accuracy: number }>;
  dropped?: Array<{ node: string; reason: string; count: number; rows: string[] }>;
  held_out?: Array<
    { node: string; from: string; rows: number; of: number; fraction: number; max: number; seed: number }
  >;
}

const summaryOf = async (runDir: string) =>
  JSON.parse(await Deno.readTextFile(`${runDir}/summary.json`)) as Summary;

/** The file:line sources of a node's rows (its artifact's `file`). */
const sourcesOf = async (runDir: string, s: Summary, node: string, file: string) => {
  const step = s.steps.find((x) => x.name === node)!;
  const text = await Deno.readTextFile(`${runDir}/artifacts/${step.step}/${step.key}/${file}`);
  return text.split("\n").filter((l) => l).map((l) => (JSON.parse(l) as { source: string }).source);
};

const tiny = ["--stage-one-steps", "1", "--stage-two-steps", "1", "--batch-size", "4", "--backend", "cpu"];

Deno.test("--data alone: held-out evaluation; drop policies list the dropped rows; --eval-on-train", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-user-data-" });
  try {
    // 20 fixture rows; line 5 has no answer block, line 9's key lies past --max-length 64.
    const rows = (await Deno.readTextFile(`${root}/fixtures/arith/train.jsonl`)).split("\n").slice(0, 20);
    rows[4] = JSON.stringify({ prompt: "p", response: "<Thinking>1+2=3</Thinking> the answer is 3" });
    rows[8] = JSON.stringify({
      prompt: "What is 1 + 1?",
      response: `<Thinking>${"1+1=2 ".repeat(30)}</Thinking><Answer>2</Answer>`,
    });
    const data = `${dir}/train.jsonl`;
    await Deno.writeTextFile(data, rows.join("\n") + "\n");
    const common = ["run", "sft", "--data", data, "--format", "tags", "--max-length", "64", ...tiny];
    const drop = ["--on-missing-key", "drop", "--on-truncated-key", "drop"];

    await t.step("held out by default, and the dropped rows named by file:line", async () => {
      const r = await ok([...common, ...drop, "--run-dir", `${dir}/held`]);
      assert(/held out of training/.test(r.stdout), r.stdout);
      const s = await summaryOf(`${dir}/held`);
      // 19 rows have a key; 10% of them, rounded, are held out.
      assertEquals(s.held_out, [
        { node: "test-split", from: data, rows: 2, of: 19, fraction: 0.1, max: 500, seed: 0 },
      ]);
      const byNode = Object.fromEntries((s.dropped ?? []).map((d) => [d.node, d]));
      assertEquals(byNode["train-keys"].rows, [`${data}:5`]);
      assertEquals(byNode["train-keys"].count, 1);
      // Line 9 is in whichever part the split put it; it is dropped there and nowhere else.
      const truncated = Object.values(byNode).filter((d) => d.node.endsWith("-tokens"));
      assertEquals(truncated.flatMap((d) => d.rows), [`${data}:9`]);
      assert(truncated[0].reason.includes("maxLength 64"), truncated[0].reason);
      // Training and test rows are disjoint and together are every kept row.
      const train = await sourcesOf(`${dir}/held`, s, "train-tokens", "tokens.jsonl");
      const test = await sourcesOf(`${dir}/held`, s, "test-tokens", "tokens.jsonl");
      assertEquals(train.filter((x) => test.includes(x)), []);
      const kept = rows.map((_, i) => `${data}:${i + 1}`).filter((x) =>
        !x.endsWith(":5") && !x.endsWith(":9")
      );
      assertEquals([...train, ...test].sort(), kept.sort());
      assertEquals(s.models.sft.n, test.length);
      // The step's own report lists them too.
      const keys = s.steps.find((x) => x.name === "train-keys")!;
      const report = JSON.parse(
        await Deno.readTextFile(`${dir}/held/artifacts/${keys.step}/${keys.key}/report.json`),
      );
      assertEquals(report.dropped.rows, [`${data}:5`]);
    });

    await t.step("without the drop flags the same data fails, naming the flag to give", async () => {
      const r = await cli([...common, "--run-dir", `${dir}/fail`]);
      assertEquals(r.code, 1);
      assert(r.stderr.includes(`${data}:5`) && r.stderr.includes("--on-missing-key drop"), r.stderr);
    });

    await t.step("--eval-on-train: the training rows are the test rows, and the header says so", async () => {
      const r = await ok([...common, ...drop, "--eval-on-train", "--run-dir", `${dir}/same`]);
      assert(/--eval-on-train: evaluating on the training rows/.test(r.stdout), r.stdout);
      const s = await summaryOf(`${dir}/same`);
      assertEquals(s.held_out, undefined);
      assertEquals(s.models.sft.n, 18);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A ChatML template in the style of Qwen2's. */
const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

Deno.test("--format messages with --locator: chat generations are scored by the locator", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-user-messages-" });
  try {
    await Deno.mkdir(`${dir}/tok`);
    await Deno.copyFile(`${root}/fixtures/arith/tokenizer.json`, `${dir}/tok/tokenizer.json`);
    await Deno.writeTextFile(
      `${dir}/tok/tokenizer_config.json`,
      JSON.stringify({ eos_token: "<|endoftext|>", chat_template: CHATML }),
    );
    const row = (answer: boolean) =>
      JSON.stringify({
        messages: [
          { role: "user", content: "What is 1 + 1?" },
          { role: "assistant", content: "<Thinking>1+1=2</Thinking><Answer>2</Answer>" },
        ],
        ...(answer ? { answer: "2" } : {}),
      });
    // Rows with and without the answer field: with --locator, the locator finds every key.
    await Deno.writeTextFile(
      `${dir}/train.jsonl`,
      [true, false, true, false, true, false, true, false].map(row).join("\n"),
    );
    await Deno.writeTextFile(`${dir}/test.jsonl`, `${row(true)}\n${row(false)}\n`);
    const runDir = `${dir}/run`;
    await ok([
      "run",
      "sft",
      "--data",
      `${dir}/train.jsonl`,
      "--test",
      `${dir}/test.jsonl`,
      "--format",
      "messages",
      "--locator",
      "answer-tags",
      "--tokenizer",
      `${dir}/tok`,
      // Enough steps to memorise the one conversation (25 were not, 50 answered both test rows).
      "--stage-one-steps",
      "40",
      "--stage-two-steps",
      "10",
      "--batch-size",
      "4",
      "--backend",
      "cpu",
      "--run-dir",
      runDir,
    ]);
    const s = await summaryOf(runDir);
    assertEquals(s.models.sft.n, 2);
    // The memorised reply's answer is found in what the model generated after the chat prompt.
    assert(s.models.sft.format_rate > 0 && s.models.sft.accuracy > 0, JSON.stringify(s.models));
    const evaluated = s.steps.find((x) => x.name === "eval-sft")!;
    const first = JSON.parse(
      (await Deno.readTextFile(`${runDir}/artifacts/${evaluated.step}/${evaluated.key}/predictions.jsonl`))
        .split("\n")[0],
    ) as { prompt: string };
    assert(first.prompt.endsWith("<|im_start|>assistant\n"), first.prompt);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("held-out split: 10% rounded, at least one row, at most max; seeded and ascending", () => {
  const split = { fraction: 0.1, max: 500, seed: 0 };
  assertEquals(heldOutIndices(10_000, split).length, 500);
  assertEquals(heldOutIndices(1_234, split).length, 123);
  assertEquals(heldOutIndices(3, split).length, 1);
  const a = heldOutIndices(200, split);
  assertEquals(a, heldOutIndices(200, split));
  assertEquals(a, [...a].sort((x, y) => x - y));
  assertEquals(new Set(a).size, 20);
  assert(a.every((i) => Number.isInteger(i) && i >= 0 && i < 200));
  // Another seed draws other rows; the split is not the first or last rows of the file.
  assert(JSON.stringify(heldOutIndices(200, { ...split, seed: 1 })) !== JSON.stringify(a));
  assert(a.at(-1)! - a[0] > 100, JSON.stringify(a));
});
