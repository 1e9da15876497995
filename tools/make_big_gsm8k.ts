/**
 * Writes a large GSM8K-format JSONL file for the scale check (README, "Data at scale"): rows of GSM8K train
 * repeated and perturbed (a numbered question, the reasoning lines repeated once as a "check" so answers
 * are longer), each keeping its final `#### answer`, so every row has a key.
 *
 *   deno run --allow-read --allow-write tools/make_big_gsm8k.ts [--rows 1000000] [--out /tmp/big.jsonl]
 *            [--from /work/shared/data/gsm8k/train.jsonl]
 *
 * The file is generated, never committed: at a million rows it is past V8's longest string (~512 MiB).
 */
const arg = (name: string, fallback: string) => {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
};

const rows = Number(arg("rows", "1000000"));
const out = arg("out", "/tmp/big_gsm8k.jsonl");
const from = arg("from", "/work/shared/data/gsm8k/train.jsonl");

// The source is small (a few MB), so reading it whole is fine here.
const base = (await Deno.readTextFile(from)).split("\n").filter((l) => l.trim().length > 0)
  .map((l) => JSON.parse(l) as { question: string; answer: string });

const file = await Deno.open(out, { write: true, create: true, truncate: true });
const encoder = new TextEncoder();
let pending: string[] = [];
let pendingChars = 0;
let bytes = 0;
for (let i = 0; i < rows; i++) {
  const row = base[i % base.length];
  const cut = row.answer.lastIndexOf("####");
  const reasoning = row.answer.slice(0, cut).trimEnd();
  const answer = `${reasoning}\nCheck (pass ${1 + Math.floor(i / base.length)}): ${
    reasoning.replaceAll("\n", " ")
  }\n${row.answer.slice(cut)}`;
  pending.push(JSON.stringify({ question: `(${i + 1}) ${row.question}`, answer }) + "\n");
  pendingChars += pending[pending.length - 1].length;
  if (pendingChars > 1 << 22 || i === rows - 1) {
    const chunk = encoder.encode(pending.join(""));
    let written = 0;
    while (written < chunk.length) written += await file.write(chunk.subarray(written));
    bytes += chunk.length;
    pending = [];
    pendingChars = 0;
  }
}
file.close();
console.log(`${rows} rows, ${(bytes / 2 ** 20).toFixed(0)} MiB: ${out}`);
