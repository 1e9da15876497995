/**
 * Real data, real tokenizers: on GSM8K (test; train in the slow tier) and MATH-500, with GPT-2's
 * tokenizer.json and Qwen2's vocab.json + merges.txt, the locator finds the key in every example and the
 * key tokens of the segment-wise tokenisation decode to exactly the expected answer text, computed here
 * independently of the locator: GSM8K's text after the last "#### ", MATH-500's own "answer" field (equal
 * to the last \boxed{} content, see data_math500.test.ts). Prompt and whole sequence must round-trip too.
 * Prints one line per dataset and tokenizer. Skips when ../shared/data is absent. The GSM8K train split
 * (7473 rows) runs only with SFTKEY_SLOW=1: alone the six runs took 37 s on the shared 2-core machine, but
 * 95 s inside the whole suite, two thirds of it the train split.
 */
import { assertEquals } from "./assert.ts";
import { Effect } from "effect";
import { type DataFormat, type RawExample, readExamples } from "../src/data/formats.ts";
import { answerPartStart, locateKey, type LocatorSpec } from "../src/data/locate.ts";
import { loadTokenizer, type TextTokenizer } from "../src/data/tokenizer.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";

const shared = new URL("../../shared/data/", import.meta.url).pathname;
const present = await Deno.stat(shared).then(() => true, () => false);
const slow = Deno.env.get("SFTKEY_SLOW") === "1";
if (!present) console.log(`${shared} absent: real-data key tests skipped`);

const TOKENIZERS = {
  "gpt2 tokenizer.json": "tokenizers/gpt2/tokenizer.json",
  "qwen2 vocab+merges": "tokenizers/qwen2",
};

const cache = new Map<string, TextTokenizer>();
const tokenizer = async (path: string) => {
  if (!cache.has(path)) cache.set(path, await Effect.runPromise(loadTokenizer(`${shared}${path}`)));
  return cache.get(path)!;
};

/** GSM8K's answer: the text after "#### " on the last line that starts with it. */
const gsm8kAnswer = (ex: RawExample) =>
  ex.response.split("\n").filter((l) => l.startsWith("#### ")).at(-1)?.slice(5).trim();

/** MATH-500's "answer" field of each row, in file order. */
const mathAnswers = (file: string) => {
  const answers = Deno.readTextFileSync(file).split("\n").filter((l) => l.trim() !== "")
    .map((l) => (JSON.parse(l) as { answer: string }).answer);
  return (_ex: RawExample, i: number) => answers[i];
};

interface Dataset {
  readonly name: string;
  readonly file: string;
  readonly format: DataFormat;
  readonly locator: LocatorSpec;
  readonly expected: (file: string) => (ex: RawExample, i: number) => string | undefined;
  readonly slow?: boolean;
}

const DATASETS: Dataset[] = [
  {
    name: "GSM8K test",
    file: "gsm8k/test.jsonl",
    format: "gsm8k",
    locator: { kind: "gsm8k" },
    expected: () => gsm8kAnswer,
  },
  {
    name: "MATH-500",
    file: "math500/test.jsonl",
    format: "math",
    locator: { kind: "boxed" },
    expected: mathAnswers,
  },
  {
    name: "GSM8K train",
    file: "gsm8k/train.jsonl",
    format: "gsm8k",
    locator: { kind: "gsm8k" },
    expected: () => gsm8kAnswer,
    slow: true,
  },
];

const TEMPLATE = "{prompt}\n";

for (const ds of DATASETS) {
  for (const [tokName, tokPath] of Object.entries(TOKENIZERS)) {
    Deno.test({
      name: `${ds.name} + ${tokName}: every key located, key tokens decode to the expected answer`,
      ignore: !present || (ds.slow === true && !slow),
      fn: async () => {
        const tok = await tokenizer(tokPath);
        const file = `${shared}${ds.file}`;
        const examples = await Effect.runPromise(readExamples(file, ds.format));
        const expectedOf = ds.expected(file);
        const t0 = performance.now();
        let located = 0;
        let exact = 0;
        let roundTrip = 0;
        let keyTokens = 0;
        const failures: string[] = [];
        examples.forEach((ex, i) => {
          const expected = expectedOf(ex, i);
          const span = locateKey(ex.response, ds.locator);
          if (span === undefined || expected === undefined) return void failures.push(`${ex.source}: no key`);
          located++;
          const t = tokeniseExample(tok, ex, span, {
            template: TEMPLATE,
            maxLength: 1 << 20,
            answerStart: answerPartStart(ex.response, ds.locator, span),
          });
          const decoded = tok.decode(t.ids.slice(t.key!.start, t.key!.end));
          if (decoded === expected) exact++;
          else {failures.push(
              `${ex.source}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(decoded)}`,
            );}
          keyTokens += t.key!.end - t.key!.start;
          const prompt = tok.decode(t.ids.slice(0, t.promptLength));
          if (prompt === `${ex.prompt}\n` && tok.decode(t.ids.slice(t.promptLength, -1)) === ex.response) {
            roundTrip++;
          } else failures.push(`${ex.source}: prompt or response does not round-trip`);
        });
        const seconds = (performance.now() - t0) / 1000;
        console.log(
          `${ds.name} | ${tokName}: ${examples.length} examples, ${located} keys located, ${exact} exact, ` +
            `${roundTrip} round trips, ${(keyTokens / located).toFixed(2)} key tokens on average ` +
            `(${seconds.toFixed(1)} s)`,
        );
        assertEquals(failures.slice(0, 5), []);
        assertEquals([located, exact, roundTrip], [examples.length, examples.length, examples.length]);
      },
    });
  }
}
