import { assert, assertEquals, assertThrows } from "./assert.ts";
import { Effect, Either } from "effect";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { readTexts, tokenizerJson, trainBpe } from "../tools/make_tokenizer.ts";

const fixtures = new URL("../fixtures/", import.meta.url).pathname;
const arithTokenizer = `${fixtures}arith/tokenizer.json`;
const gpt2 = new URL("../../shared/data/tokenizers/gpt2/tokenizer.json", import.meta.url).pathname;
const haveGpt2 = await Deno.stat(gpt2).then(() => true, () => false);
if (!haveGpt2) console.log(`(${gpt2} absent: GPT-2 tokenizer tests skipped)`);

const load = (path: string) => Effect.runPromise(Effect.either(loadTokenizer(path)));

Deno.test("fixture tokenizer: small vocabulary, EOS last, exact round trip on every fixture text", async () => {
  const tok = Either.getOrThrow(await load(arithTokenizer));
  assert(tok.vocabSize < 512, `vocab ${tok.vocabSize}`);
  assertEquals(tok.eosId, tok.vocabSize - 1);
  assertEquals(tok.tokenText(tok.eosId), "<|endoftext|>");
  const files = ["arith/train.jsonl", "arith/test.jsonl", "gsm8k-mini/train.jsonl", "gsm8k-mini/test.jsonl"];
  const texts = readTexts(files.map((f) => fixtures + f));
  let tokens = 0;
  for (const text of texts) {
    const ids = tok.encode(text);
    tokens += ids.length;
    assert(!ids.includes(tok.eosId), "no special tokens added");
    if (tok.decode(ids) !== text) throw new Error(`round trip failed for ${JSON.stringify(text)}`);
  }
  // Tags and numbers must compress well, or the tiny models waste their context on bytes.
  assertEquals(tok.encode("<Thinking>").length, 3);
  assertEquals(tok.encode("</Answer>").length, 3);
  assertEquals(tok.encode("27").length, 1);
  console.log(
    `fixture tokenizer: vocab ${tok.vocabSize}, ${texts.length} texts, ${
      (tokens / texts.length).toFixed(1)
    } tokens/text`,
  );
  // Round trip on text the tokenizer never saw, including multi-byte characters.
  for (const text of ["Ünïcødé ✓ 😀 tabs\tand  spaces\n", " leading space", "a . b , c ?"]) {
    assertEquals(tok.decode(tok.encode(text)), text);
  }
  assertEquals(tok.decode([]), "");
  assertThrows(() => tok.tokenText(tok.vocabSize), RangeError);
});

Deno.test("fixture tokenizer is what tools/make_tokenizer.ts produces", () => {
  const texts = readTexts([`${fixtures}arith/train.jsonl`, `${fixtures}gsm8k-mini/train.jsonl`]);
  const expected = tokenizerJson(trainBpe(texts, 150, 2));
  assertEquals(JSON.parse(Deno.readTextFileSync(arithTokenizer)), expected);
});

Deno.test("a directory holding tokenizer.json loads", async () => {
  const tok = Either.getOrThrow(await load(`${fixtures}arith`));
  assertEquals(tok.path, arithTokenizer);
});

Deno.test("loadTokenizer errors: missing file, malformed JSON, no EOS, unknown eos_token", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-tok-" });
  try {
    const missing = await load(`${dir}/tokenizer.json`);
    assert(Either.isLeft(missing) && missing.left._tag === "FileUnreadable");
    const emptyDir = await load(dir);
    assert(Either.isLeft(emptyDir) && emptyDir.left._tag === "FileUnreadable");

    await Deno.writeTextFile(`${dir}/tokenizer.json`, '{"model": ');
    const malformed = await load(`${dir}/tokenizer.json`);
    assert(Either.isLeft(malformed) && malformed.left._tag === "TokenizerMismatch");
    assertEquals(malformed.left.path, `${dir}/tokenizer.json`);

    await Deno.writeTextFile(`${dir}/tokenizer.json`, '{"vocab": {}}');
    const notTokenizer = await load(`${dir}/tokenizer.json`);
    assert(Either.isLeft(notTokenizer) && notTokenizer.left._tag === "TokenizerMismatch");

    const noEos = tokenizerJson([]);
    noEos.added_tokens = [];
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(noEos));
    const r = await load(`${dir}/tokenizer.json`);
    assert(
      Either.isLeft(r) && r.left._tag === "TokenizerMismatch" && r.left.reason.includes("end-of-sequence"),
    );

    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tokenizerJson([])));
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ eos_token: "</s>" }));
    const unknown = await load(`${dir}/tokenizer.json`);
    assert(
      Either.isLeft(unknown) && unknown.left._tag === "TokenizerMismatch" &&
        unknown.left.reason.includes("</s>"),
    );

    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ eos_token: { content: "<|endoftext|>" } }),
    );
    const ok = Either.getOrThrow(await load(`${dir}/tokenizer.json`));
    assertEquals(ok.eosId, 256);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "GPT-2 tokenizer: no special tokens added, no space clean-up, EOS found",
  ignore: !haveGpt2,
  fn: async () => {
    const tok = Either.getOrThrow(await load(gpt2));
    assertEquals(tok.vocabSize, 50257);
    assertEquals(tok.eosId, 50256);
    const text = "Hello world . It 's 1,000 dollars ?";
    assertEquals(tok.encode("Hello world"), [15496, 995]);
    assertEquals(tok.decode(tok.encode(text)), text);
    assertEquals(tok.tokenText(995), " world");
  },
});
