/**
 * Token statistics of a word-problem set with a tokenizer: the longest training example (prompt, the
 * `{prompt}\n` template, response and EOS), the longest test response (+ EOS), and the key's share of the
 * response tokens (the SFTKey paper's premise). Sizes --max-length / --max-new-tokens and the fixtures'
 * READMEs. Usage: deno run -A tools/word_stats.ts <dir> [tokenizer.json]
 */
import { Effect } from "effect";
import { loadTokenizer } from "../src/data/tokenizer.ts";

const [dir, tokPath = "fixtures/base/tokenizer.json"] = Deno.args;
const tok = await Effect.runPromise(loadTokenizer(tokPath));
const rows = (split: string) =>
  Deno.readTextFileSync(`${dir}/${split}.jsonl`).trim().split("\n").map((l) => JSON.parse(l));
// The key: the answer part after the thinking part (tags), or the `#### ` line (GSM8K); EOS counts as key.
const split = (r: Record<string, string>) => {
  if ("response" in r) {
    const i = r.response.indexOf("</Thinking>") + "</Thinking>".length;
    return { prompt: r.prompt, cot: r.response.slice(0, i), key: r.response.slice(i) };
  }
  const i = r.answer.lastIndexOf("#### ");
  return { prompt: r.question, cot: r.answer.slice(0, i), key: r.answer.slice(i) };
};
let keyTokens = 0, responseTokens = 0, longestTrain = 0, longestTestResponse = 0;
for (const r of rows("train")) {
  const s = split(r);
  const cot = tok.encode(s.cot).length, key = tok.encode(s.key).length + 1;
  keyTokens += key;
  responseTokens += cot + key;
  longestTrain = Math.max(longestTrain, tok.encode(`${s.prompt}\n`).length + cot + key);
}
for (const r of rows("test")) {
  const s = split(r);
  longestTestResponse = Math.max(
    longestTestResponse,
    tok.encode(s.cot).length + tok.encode(s.key).length + 1,
  );
}
console.log(JSON.stringify({
  dir,
  keyShare: +(keyTokens / responseTokens).toFixed(4),
  meanResponseTokens: +(responseTokens / rows("train").length).toFixed(1),
  longestTrain,
  longestTestResponse,
}));
