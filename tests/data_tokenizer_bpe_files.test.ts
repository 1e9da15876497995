/**
 * GPT-2-style vocab.json + merges.txt loading (no tokenizer.json), against ids published by others:
 * transformers' own Qwen2 tokenizer tests (a toy vocabulary, and its integration test on the real Qwen
 * vocabulary), rtp-llm's test of the Qwen2 fixture in ../shared, and GPT-2's tokenizer.json encoding the
 * same texts through the other loading path. The real-vocabulary tests skip when ../shared is absent.
 */
import { assert, assertEquals } from "./assert.ts";
import { Effect, Either } from "effect";
import {
  checkVocab,
  loadTokenizer,
  type TextTokenizer,
  tokenizerVocabSizeSync,
} from "../src/data/tokenizer.ts";
import { readExamples } from "../src/data/formats.ts";

const shared = new URL("../../shared/data/", import.meta.url).pathname;
const qwenDir = `${shared}tokenizers/qwen2`;
const gpt2Json = `${shared}tokenizers/gpt2/tokenizer.json`;
const present = await Deno.stat(qwenDir).then(() => true, () => false) &&
  await Deno.stat(gpt2Json).then(() => true, () => false);
if (!present) console.log(`(${shared}tokenizers absent: real vocab.json + merges.txt tests skipped)`);

const load = (path: string) => Effect.runPromise(Effect.either(loadTokenizer(path)));
const loadOk = async (path: string): Promise<TextTokenizer> => Either.getOrThrow(await load(path));

/** The byte symbols in the order of transformers' bytes_to_unicode() (printable bytes first). */
const byteSymbols = (): string[] => {
  const printable: number[] = [];
  for (let b = 0; b < 256; b++) {
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) printable.push(b);
  }
  const symbols = printable.map((b) => String.fromCharCode(b));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) symbols.push(String.fromCharCode(256 + n++));
  return symbols;
};

/**
 * The toy tokenizer of transformers' tests/models/qwen2/test_tokenization_qwen2.py (Apache-2.0): every byte
 * symbol, then a few merges, some of which the pre-tokenizer makes ineffective.
 */
const toyFiles = async (dir: string, config: Record<string, unknown> | undefined, header: boolean) => {
  const extra = [
    "Ġl",
    "Ġn",
    "Ġlo",
    "Ġlow",
    "er",
    "Ġlowest",
    "Ġnewer",
    "Ġwider",
    "01",
    ";}",
    ";}Ċ",
    "Ïĵ",
    "##",
  ];
  const vocab = Object.fromEntries([...byteSymbols(), ...extra].map((t, i) => [t, i]));
  const merges = ["Ġ l", "Ġl o", "Ġlo w", "e r", "0 1", "; }", ";} Ċ", "Ï ĵ", "# #"];
  await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify(vocab) + "\n");
  await Deno.writeTextFile(`${dir}/merges.txt`, [...(header ? ["#version: 0.2"] : []), ...merges].join("\n"));
  if (config) await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(config));
};

const withDir = async (f: (dir: string) => Promise<void>) => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-bpe-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
};

Deno.test("toy Qwen2 vocab.json + merges.txt: the ids transformers' test expects (NFC, digits, newlines)", () =>
  withDir(async (dir) => {
    await toyFiles(dir, { tokenizer_class: "Qwen2Tokenizer", eos_token: "<|endoftext|>" }, true);
    const tok = await loadOk(dir);
    // "\u03d2\u0301" is the NFD form of "\u03d3": Qwen2 normalises to NFC before splitting.
    const text = "##lower lower newer 010;}\n<|endoftext|>\u03d2\u0301";
    const expected = [268, 75, 78, 86, 260, 259, 260, 220, 77, 68, 86, 260, 220, 15, 16, 15, 266, 269, 267];
    assertEquals(tok.encode(text), expected);
    assertEquals(tok.eosId, 269, "an eos_token missing from vocab.json gets the next id");
    assertEquals(tok.vocabSize, 270);
    assertEquals(tok.decode(expected), "##lower lower newer 010;}\n<|endoftext|>\u03d3");
    assertEquals(tok.path, dir);
    // The same files without the "#version" header line give the same tokenizer.
    await toyFiles(dir, undefined, false);
    assertEquals((await loadOk(`${dir}/merges.txt`)).encode(text), expected);
  }));

Deno.test("toy vocabulary as GPT-2 (no tokenizer_config.json): digits in groups, no NFC", () =>
  withDir(async (dir) => {
    await toyFiles(dir, undefined, true);
    const tok = await loadOk(`${dir}/vocab.json`);
    // GPT-2's pattern keeps " 010" together, so the "0 1" merge applies; Qwen2's splits it digit by digit.
    assertEquals(tok.encode(" 010"), [220, 264, 15]);
    assertEquals(tok.encode("lower newer"), [75, 78, 86, 260, 220, 77, 68, 86, 260]);
    const nfd = "\u03d2\u0301";
    assertEquals(tok.decode(tok.encode(nfd)), nfd, "GPT-2 does not normalise");
    assertEquals(tok.eosId, 269, "GPT-2's <|endoftext|> is its EOS when there is no config");
  }));

Deno.test("vocab.json + merges.txt errors are typed and name the file and line", () =>
  withDir(async (dir) => {
    const reason = async (path: string) => {
      const r = await load(path);
      assert(Either.isLeft(r), `expected ${path} to fail`);
      return `${r.left._tag}: ${"path" in r.left ? r.left.path : ""} ${
        "reason" in r.left ? r.left.reason : ""
      }`;
    };
    await toyFiles(dir, undefined, true);
    await Deno.remove(`${dir}/merges.txt`);
    assert((await reason(`${dir}/vocab.json`)).startsWith("FileUnreadable"));
    assert((await reason(dir)).startsWith("FileUnreadable"));

    await toyFiles(dir, undefined, true);
    await Deno.writeTextFile(`${dir}/merges.txt`, "#version: 0.2\nĠ l\nĠl o x\n");
    assert((await reason(dir)).includes(`merges.txt:3 expected two symbols`), await reason(dir));
    await Deno.writeTextFile(`${dir}/merges.txt`, "Ġ l\nq z\n");
    const notInVocab = await reason(dir);
    assert(
      notInVocab.startsWith("TokenizerMismatch") && notInVocab.includes(`merges.txt:2 "qz" is not in vocab`),
    );

    await toyFiles(dir, { tokenizer_class: "LlamaTokenizer" }, true);
    assert((await reason(dir)).includes(`tokenizer_class "LlamaTokenizer"`));
    await toyFiles(dir, { added_tokens_decoder: { "5": { content: "<|x|>" } } }, true);
    assert((await reason(dir)).includes("which vocab.json gives"));
    await toyFiles(dir, { added_tokens_decoder: { "300": { content: "##" } } }, true);
    assert((await reason(dir)).includes("vocab.json gives it 268"));
    await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify({ a: 0, b: -1 }));
    assert((await reason(dir)).includes(`"b" has id -1`));
  }));

Deno.test("checkVocab: a tokenizer whose ids do not fit the model's embedding is a TokenizerMismatch", () =>
  withDir(async (dir) => {
    await toyFiles(dir, undefined, true);
    const tok = await loadOk(dir);
    const check = (rows: number) => Effect.runSync(Effect.either(checkVocab(tok, rows)));
    assert(Either.isRight(check(270)));
    assert(Either.isRight(check(512)), "a padded embedding is fine");
    const tooSmall = check(269);
    assert(Either.isLeft(tooSmall) && tooSmall.left._tag === "TokenizerMismatch");
    assert(tooSmall.left.reason.includes("269 rows"));
  }));

Deno.test({
  name: "Qwen2 vocab.json + merges.txt: ids of transformers' integration test and rtp-llm's fixture test",
  ignore: !present,
  fn: async () => {
    const t0 = performance.now();
    const tok = await loadOk(qwenDir);
    console.log(`Qwen2 vocab.json + merges.txt loaded in ${(performance.now() - t0).toFixed(0)} ms`);
    assertEquals(tok.vocabSize, 151646);
    assertEquals(tok.eosId, 151643);
    assertEquals(tok.encode("hello"), [14990]);
    // rtp_llm/test/tokenizer_test/qwen2_tokenizer_test.py, on this very file set.
    assertEquals(tok.encode("<|im_start|>hello<|im_end|>"), [151644, 14990, 151645]);
    // transformers tests/models/qwen2/test_tokenization_qwen2.py::test_tokenizer_integration
    // (Qwen/Qwen-tokenizer, the same vocabulary; Apache-2.0), without its padding.
    const cases: [string, number[]][] = [
      [
        "Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides " +
        "general-purpose architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural " +
        "Language Understanding (NLU) and Natural Language Generation (NLG) with over 32+ pretrained " +
        "models in 100+ languages and deep interoperability between Jax, PyTorch and TensorFlow.",
        // deno-fmt-ignore
        [8963, 388, 320, 69514, 3881, 438, 4510, 27414, 32852, 388, 323, 4510, 27414, 21334, 35722, 1455, 529, 8, 5707, 4586, 58238, 77235, 320, 61437, 11, 479, 2828, 12, 17, 11, 11830, 61437, 64, 11, 1599, 10994, 11, 27604, 321, 33, 529, 11, 29881, 6954, 32574, 369, 18448, 11434, 45451, 320, 45, 23236, 8, 323, 18448, 11434, 23470, 320, 30042, 38, 8, 448, 916, 220, 18, 17, 10, 80669, 4119, 304, 220, 16, 15, 15, 10, 15459, 323, 5538, 94130, 2897, 1948, 619, 706, 11, 5355, 51, 21584, 323, 94986, 13],
      ],
      [
        "🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具。使用预训练模型可以减少计算消耗和碳排放，并且节省从头训练所需要的时间和资源。",
        // deno-fmt-ignore
        [144834, 80532, 93685, 83744, 34187, 73670, 104261, 29490, 62189, 103937, 104034, 102830, 98841, 104034, 104949, 9370, 5333, 58143, 102011, 1773, 37029, 98841, 104034, 104949, 73670, 101940, 100768, 104997, 33108, 100912, 105054, 90395, 100136, 106831, 45181, 64355, 104034, 113521, 101975, 33108, 85329, 1773],
      ],
      [
        '```python\ntokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen-tokenizer")\ntokenizer("世界，你好！")```',
        // deno-fmt-ignore
        [73594, 12669, 198, 85593, 284, 8979, 37434, 6387, 10442, 35722, 445, 48, 16948, 45274, 16948, 34841, 3135, 1138, 85593, 445, 99489, 3837, 108386, 6313, 899, 73594],
      ],
    ];
    for (const [text, ids] of cases) {
      assertEquals(tok.encode(text), ids);
      assertEquals(tok.decode(ids), text);
    }
    // Digits one by one, with a leading space as its own token; multi-byte characters round-trip.
    assertEquals(tok.encode(" 2024").map((id) => tok.tokenText(id)), [" ", "2", "0", "2", "4"]);
    for (const text of ["Ünïcødé ✓ 😀 tabs\tand  spaces\n\n", "#### 1,000.50", "$\\frac{1}{2}$"]) {
      assertEquals(tok.decode(tok.encode(text)), text);
    }
    // The plain ChatML template of this config is exposed for the messages format.
    assert(tok.chatTemplate?.includes("<|im_start|>"));
    assertEquals(tok.specialTokens.eos_token, "<|endoftext|>");
  },
});

Deno.test({
  name: "GPT-2 as vocab.json + merges.txt encodes GSM8K exactly as GPT-2's tokenizer.json does",
  ignore: !present,
  fn: () =>
    withDir(async (dir) => {
      const fast = await loadOk(gpt2Json);
      // Write the slow pair from tokenizer.json's model: the two loading paths must agree token for token.
      const json = JSON.parse(await Deno.readTextFile(gpt2Json));
      await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify(json.model.vocab));
      await Deno.writeTextFile(
        `${dir}/merges.txt`,
        ["#version: 0.2", ...json.model.merges].join("\n") + "\n",
      );
      const slow = await loadOk(dir);
      assertEquals([slow.vocabSize, slow.eosId], [fast.vocabSize, fast.eosId]);
      assertEquals(slow.encode("Hello world"), [15496, 995]);
      // GPT-2 keeps digits in groups (" 2024" is one token); contrast with Qwen2 above.
      assertEquals(slow.encode(" 2024").length, 1);
      const examples = await Effect.runPromise(readExamples(`${shared}gsm8k/test.jsonl`, "gsm8k"));
      let tokens = 0;
      for (const ex of examples.slice(0, 300)) {
        const text = `${ex.prompt}\n${ex.response}<|endoftext|>`;
        const ids = slow.encode(text);
        assertEquals(ids, fast.encode(text), ex.source);
        assertEquals(ids.at(-1), 50256);
        tokens += ids.length;
      }
      console.log(`GPT-2 slow vs fast: 300 GSM8K examples, ${tokens} tokens, identical`);
    }),
});

Deno.test("tokenizerVocabSizeSync agrees with loadTokenizer for every layout", () =>
  withDir(async (dir) => {
    await toyFiles(dir, { tokenizer_class: "Qwen2Tokenizer", eos_token: "<|endoftext|>" }, true);
    const fixture = new URL("../fixtures/arith/tokenizer.json", import.meta.url).pathname;
    const paths = [dir, `${dir}/vocab.json`, fixture, ...(present ? [qwenDir, gpt2Json] : [])];
    for (const path of paths) {
      assertEquals(tokenizerVocabSizeSync(path), (await loadOk(path)).vocabSize, path);
    }
    assertEquals(tokenizerVocabSizeSync(dir), 270, "the eos_token appended after vocab.json counts");
  }));
