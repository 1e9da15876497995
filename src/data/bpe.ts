/**
 * Training a small byte-level BPE tokenizer and writing it in Hugging Face tokenizer.json form
 * (tools/make_tokenizer.ts for the fixtures' tokenizer, the trainTokenizer step for the pretrained base's).
 *
 * The layout copies GPT-2's: the 256 byte symbols (bytes mapped to printable characters, so every string
 * is encodable and decode(encode(x)) === x), a pre-tokenizer that splits text into pieces merges never
 * cross, merges learned greedily by pair frequency, and "<|endoftext|>" as the only special token, with
 * the last id.
 *
 * Two split patterns: GPT-2's (digits in runs: " 2024" is one piece), and "single digits" (every digit its
 * own piece, spaces apart from digits), which gives a number the same digit tokens wherever it appears —
 * what a small model learning arithmetic needs (Llama 3 and Qwen2 split digits for the same reason).
 */

/** GPT-2's split pattern (the one @huggingface/tokenizers uses for ByteLevel with use_regex). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * Single digits: a word keeps the one non-letter, non-digit character before it (" apples", "(apples"),
 * each digit is a piece of its own, punctuation runs keep a space before them and newlines after them.
 * Written so that JavaScript's and Oniguruma's (HF tokenizers') regex engines read it alike.
 */
export const DIGIT_SPLIT_SOURCE =
  "'s|'t|'re|'ve|'m|'ll|'d|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** How text is cut into pieces before merges: GPT-2's digit runs, or one piece per digit. */
export type Digits = "grouped" | "single";

const splitPattern = (digits: Digits): RegExp =>
  digits === "grouped" ? GPT2_SPLIT : new RegExp(DIGIT_SPLIT_SOURCE, "gu");

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

/** Pre-tokenise and map to byte symbols: each distinct piece is a list of single-byte symbols. */
const words = (
  texts: Iterable<string>,
  digits: Digits,
): Map<string, { symbols: string[]; count: number }> => {
  const table = byteToChar();
  const encoder = new TextEncoder();
  const pattern = splitPattern(digits);
  const out = new Map<string, { symbols: string[]; count: number }>();
  for (const text of texts) {
    for (const piece of text.match(pattern) ?? []) {
      const entry = out.get(piece);
      if (entry) entry.count++;
      else out.set(piece, { symbols: Array.from(encoder.encode(piece), (b) => table[b]), count: 1 });
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
  digits: Digits = "grouped",
): [string, string][] => {
  const ws = [...words(texts, digits).values()];
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
      if (w.symbols.length < 2) continue;
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

/**
 * A tokenizer.json object in the layout of GPT-2's (model BPE, ByteLevel decoder). The pre-tokenizer is
 * ByteLevel with GPT-2's pattern, or for single digits a Split with DIGIT_SPLIT_SOURCE followed by
 * ByteLevel without its own pattern (the layout of Qwen2's tokenizer.json).
 */
export const tokenizerJson = (
  merges: ReadonlyArray<readonly [string, string]>,
  digits: Digits = "grouped",
) => {
  const vocab: Record<string, number> = {};
  byteToChar().forEach((c, b) => (vocab[c] = b));
  for (const [l, r] of merges) vocab[l + r] ??= Object.keys(vocab).length;
  const eosId = Object.keys(vocab).length;
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const preTokenizer = digits === "grouped" ? byteLevel : {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: DIGIT_SPLIT_SOURCE }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
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
    pre_tokenizer: preTokenizer,
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
