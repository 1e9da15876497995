/**
 * Trains a small byte-level BPE tokenizer and writes it in Hugging Face tokenizer.json form.
 *
 *   npx -y deno@2.9.6 run --allow-read=fixtures --allow-write=fixtures tools/make_tokenizer.ts
 *
 * Reads the string fields of every row of fixtures/arith/train.jsonl and fixtures/gsm8k-mini/train.jsonl,
 * writes fixtures/arith/tokenizer.json and fixtures/arith/tokenizer_config.json.
 * Options: --in FILE (repeatable, replaces the defaults), --out DIR, --merges N (default 150),
 * --min-count N (default 2: a pair seen once is not worth a token).
 *
 * The layout copies GPT-2's: the 256 byte symbols (bytes mapped to printable characters, so every string
 * is encodable and decode(encode(x)) === x), a ByteLevel pre-tokenizer with GPT-2's split pattern (merges
 * never cross a space/letter/digit/punctuation boundary), merges learned greedily by pair frequency, and
 * "<|endoftext|>" as the only special token, with the last id. The vocabulary stays small (< 512) because
 * the tiny test models size their embedding by it.
 */

/** GPT-2's split pattern (the one @huggingface/tokenizers uses for ByteLevel with use_regex). */
const SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export const EOS = "<|endoftext|>";

/**
 * GPT-2's byte-to-character table: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100 upwards in byte order, so every token is a readable string without spaces or control characters.
 */
export const byteToChar = (): string[] => {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 0x100;
  for (let b = 0; b < 256; b++) table.push(String.fromCharCode(printable(b) ? b : next++));
  return table;
};

/** Pre-tokenise and map to byte symbols: each word is a list of single-byte symbols. */
const words = (texts: Iterable<string>): Map<string, { symbols: string[]; count: number }> => {
  const table = byteToChar();
  const encoder = new TextEncoder();
  const out = new Map<string, { symbols: string[]; count: number }>();
  for (const text of texts) {
    for (const piece of text.match(SPLIT) ?? []) {
      const symbols = Array.from(encoder.encode(piece), (b) => table[b]);
      const key = symbols.join("");
      const entry = out.get(key);
      if (entry) entry.count++;
      else out.set(key, { symbols, count: 1 });
    }
  }
  return out;
};

/**
 * Greedy BPE: repeatedly merge the most frequent adjacent pair (ties broken by the pair's text, so the
 * result is deterministic) until `maxMerges` merges or no pair occurs `minCount` times.
 */
export const trainBpe = (
  texts: Iterable<string>,
  maxMerges: number,
  minCount: number,
): [string, string][] => {
  const ws = [...words(texts).values()];
  const merges: [string, string][] = [];
  while (merges.length < maxMerges) {
    const counts = new Map<string, number>();
    for (const w of ws) {
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const pair = `${w.symbols[i]} ${w.symbols[i + 1]}`;
        counts.set(pair, (counts.get(pair) ?? 0) + w.count);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [pair, n] of counts) {
      if (n > bestCount || (n === bestCount && best !== undefined && pair < best)) {
        best = pair;
        bestCount = n;
      }
    }
    if (best === undefined || bestCount < minCount) break;
    const [left, right] = best.split(" ") as [string, string];
    merges.push([left, right]);
    for (const w of ws) {
      const merged: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === left && w.symbols[i + 1] === right) {
          merged.push(left + right);
          i++;
        } else {
          merged.push(w.symbols[i]);
        }
      }
      w.symbols = merged;
    }
  }
  return merges;
};

/** A tokenizer.json object in the layout of GPT-2's (model BPE, ByteLevel pre-tokenizer and decoder). */
export const tokenizerJson = (merges: ReadonlyArray<readonly [string, string]>) => {
  const vocab: Record<string, number> = {};
  byteToChar().forEach((c, b) => (vocab[c] = b));
  for (const [l, r] of merges) vocab[l + r] ??= Object.keys(vocab).length;
  const eosId = Object.keys(vocab).length;
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: eosId,
        content: EOS,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      // "left right" strings: byte symbols never contain a space, and older readers only know this form.
      merges: merges.map(([l, r]) => `${l} ${r}`),
    },
  };
};

export const tokenizerConfig = {
  tokenizer_class: "PreTrainedTokenizerFast",
  eos_token: EOS,
  bos_token: null,
  pad_token: EOS,
  unk_token: null,
  add_bos_token: false,
  add_prefix_space: false,
  clean_up_tokenization_spaces: false,
};

/** The string values of every row of the given JSONL files. */
export const readTexts = (files: ReadonlyArray<string>): string[] =>
  files.flatMap((f) =>
    Deno.readTextFileSync(f).split("\n").filter((l) => l.trim() !== "").flatMap((l) =>
      Object.values(JSON.parse(l) as Record<string, unknown>).filter((v): v is string =>
        typeof v === "string"
      )
    )
  );

if (import.meta.main) {
  const args = Deno.args;
  const value = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const inputs = args.flatMap((a, i) => (a === "--in" && i + 1 < args.length ? [args[i + 1]] : []));
  const files = inputs.length ? inputs : ["fixtures/arith/train.jsonl", "fixtures/gsm8k-mini/train.jsonl"];
  const out = value("--out") ?? "fixtures/arith";
  const merges = trainBpe(
    readTexts(files),
    Number(value("--merges") ?? 150),
    Number(value("--min-count") ?? 2),
  );
  const json = tokenizerJson(merges);
  Deno.writeTextFileSync(`${out}/tokenizer.json`, JSON.stringify(json, null, 2) + "\n");
  Deno.writeTextFileSync(`${out}/tokenizer_config.json`, JSON.stringify(tokenizerConfig, null, 2) + "\n");
  console.log(
    `wrote ${out}/tokenizer.json: ${merges.length} merges, vocabulary ${json.added_tokens[0].id + 1}`,
  );
}
