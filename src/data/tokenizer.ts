/**
 * Hugging Face tokenizers through @huggingface/tokenizers, behind a small interface.
 *
 * Two layouts load: a `tokenizer.json` (the "fast" format), and the GPT-2-style "slow" pair `vocab.json` +
 * `merges.txt` that some checkpoints ship instead (Qwen2's, for one). The slow pair is turned into the
 * tokenizer.json its model family would have (byte-level BPE with the family's split pattern) and handed to
 * the same library, so both layouts share one encoder.
 *
 * The interface deliberately has no special-token handling: `encode` never adds BOS/EOS (the toolkit
 * appends EOS itself, see tokenise.ts) and `decode` never cleans up spaces, so that
 * `decode(encode(x)) === x` for byte-level tokenizers and key spans map to exact characters.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { Effect, Either } from "effect";
import { FileUnreadable, TokenizerMismatch } from "../errors.ts";
export { TOKENIZER_COMPANIONS } from "./tokenizer_files.ts";

export interface TextTokenizer {
  /** The tokenizer.json file it was loaded from, or the directory holding vocab.json + merges.txt. */
  readonly path: string;
  /** One more than the largest token id (added tokens included): the embedding size a model needs. */
  readonly vocabSize: number;
  /** End-of-sequence token appended after every response. */
  readonly eosId: number;
  /** Token ids of `text`, without any special tokens added. */
  readonly encode: (text: string) => number[];
  /** Text of `ids`; special tokens are kept as their text; no clean-up of spaces. An empty list gives "". */
  readonly decode: (ids: ReadonlyArray<number>) => string;
  /**
   * Text of one token, as `decode([id])` (a lone byte of a multi-byte character shows as U+FFFD).
   * Throws a RangeError for an id outside the vocabulary.
   */
  readonly tokenText: (id: number) => string;
  /** The chat template of tokenizer_config.json (or chat_template.jinja beside it), when there is one. */
  readonly chatTemplate?: string;
  /**
   * The special tokens tokenizer_config.json names (`bos_token`, `eos_token`, `unk_token`, `pad_token`),
   * by those names: chat templates refer to them.
   */
  readonly specialTokens: Readonly<Record<string, string>>;
}

/** Names tried, in order, when tokenizer_config.json does not say which token ends a sequence. */
const EOS_FALLBACKS = ["<|endoftext|>", "</s>", "<|im_end|>"];

/**
 * Split patterns of the byte-level BPE families a vocab.json + merges.txt pair can come from. GPT-2's is
 * the ByteLevel pre-tokenizer's built-in one (digits in groups: " 2024" is one piece); Qwen2's (shared by
 * Qwen1.5, 2, 2.5 and 3) is the one its tokenizer.json carries as a Split pre-tokenizer, with single digits
 * (`\p{N}` without `+`) and newlines attached to punctuation.
 */
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

type Family = "gpt2" | "qwen2";

/** tokenizer_config.json's tokenizer_class -> family; the slow and fast classes share a pre-tokenizer. */
const FAMILIES: Readonly<Record<string, Family>> = {
  GPT2Tokenizer: "gpt2",
  GPT2TokenizerFast: "gpt2",
  Qwen2Tokenizer: "qwen2",
  Qwen2TokenizerFast: "qwen2",
};

/** An error's message on one line (JSON.parse quotes the offending text, newlines included). */
const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, " ");

const readText = (path: string) =>
  Effect.tryPromise({
    try: () => Deno.readTextFile(path),
    catch: (e) => new FileUnreadable({ path, reason: message(e) }),
  });

const parseJson = (path: string, text: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (e) => new TokenizerMismatch({ path, reason: `not valid JSON (${message(e)})` }),
  });

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const isFile = (path: string) => Deno.stat(path).then((i) => i.isFile, () => false);

const dirOf = (file: string) => {
  const slash = file.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : file.slice(0, slash);
};

/** Where the tokenizer lives: a tokenizer.json file, or a directory with vocab.json + merges.txt. */
type Source = { readonly kind: "json"; readonly file: string } | {
  readonly kind: "slow";
  readonly dir: string;
};

/**
 * Resolve what the user gave: a tokenizer.json, a vocab.json or merges.txt (the pair is taken from its
 * directory), or a directory (a model directory works as is); a directory's tokenizer.json wins over a
 * vocab.json + merges.txt pair, as in Hugging Face's loaders.
 */
const resolveSource = (path: string) =>
  Effect.tryPromise({
    try: async (): Promise<Source> => {
      const info = await Deno.stat(path);
      if (info.isDirectory) {
        const dir = path.replace(/(.)\/+$/, "$1");
        if (await isFile(`${dir}/tokenizer.json`)) return { kind: "json", file: `${dir}/tokenizer.json` };
        if (await isFile(`${dir}/vocab.json`) && await isFile(`${dir}/merges.txt`)) {
          return { kind: "slow", dir };
        }
        throw new Error("is a directory without a tokenizer.json or a vocab.json + merges.txt pair");
      }
      if (!info.isFile) {
        throw new Error("not a regular file");
      }
      const name = path.slice(path.lastIndexOf("/") + 1);
      if (name === "vocab.json" || name === "merges.txt") {
        const dir = dirOf(path);
        const other = `${dir}/${name === "vocab.json" ? "merges.txt" : "vocab.json"}`;
        if (!await isFile(other)) {
          throw new Error(`${other} is missing (vocab.json and merges.txt go together)`);
        }
        return { kind: "slow", dir };
      }
      return { kind: "json", file: path };
    },
    catch: (e) => new FileUnreadable({ path, reason: message(e) }),
  });

/** tokenizer_config.json in `dir`, or an empty config when there is none. */
const readConfig = (dir: string) => {
  const configPath = `${dir}/tokenizer_config.json`;
  return Effect.promise(() => isFile(configPath)).pipe(
    Effect.flatMap((exists) =>
      exists
        ? readText(configPath).pipe(
          Effect.flatMap((text) => parseJson(configPath, text)),
          Effect.filterOrFail(
            isRecord,
            () => new TokenizerMismatch({ path: configPath, reason: "must be a JSON object" }),
          ),
        )
        : Effect.succeed({} as Record<string, unknown>)
    ),
  );
};

/** A special token in tokenizer_config.json is a string, or an object with `content` in older files. */
const tokenString = (v: unknown): string | undefined => {
  if (typeof v === "string") return v;
  if (isRecord(v) && typeof v.content === "string") return v.content;
  return undefined;
};

const SPECIAL_NAMES = ["bos_token", "eos_token", "unk_token", "pad_token"] as const;

const specialTokensOf = (config: Record<string, unknown>): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const name of SPECIAL_NAMES) {
    const s = tokenString(config[name]);
    if (s !== undefined) out[name] = s;
  }
  return out;
};

/**
 * The chat template: tokenizer_config.json's `chat_template` (a string, or a list of named templates of
 * which "default" is used, as transformers does), else a chat_template.jinja file beside it (the layout
 * newer transformers versions save).
 */
const readChatTemplate = (dir: string, config: Record<string, unknown>) =>
  Effect.gen(function* () {
    const t = config.chat_template;
    if (typeof t === "string") return t;
    if (Array.isArray(t)) {
      const named = t.find((e) => isRecord(e) && e.name === "default");
      if (isRecord(named) && typeof named.template === "string") return named.template;
    }
    const file = `${dir}/chat_template.jinja`;
    if (yield* Effect.promise(() => isFile(file))) return yield* readText(file);
    return undefined;
  });

const findEos = (path: string, tok: Tokenizer, config: Record<string, unknown>) => {
  const named = tokenString(config.eos_token);
  if (named !== undefined) {
    const id = tok.token_to_id(named);
    return id === undefined
      ? Effect.fail(
        new TokenizerMismatch({
          path,
          reason: `eos_token "${named}" from tokenizer_config.json is not in the vocabulary`,
        }),
      )
      : Effect.succeed(id);
  }
  for (const name of EOS_FALLBACKS) {
    const id = tok.token_to_id(name);
    if (id !== undefined) return Effect.succeed(id);
  }
  return Effect.fail(
    new TokenizerMismatch({
      path,
      reason: `no end-of-sequence token: set eos_token in tokenizer_config.json or add one of ${
        EOS_FALLBACKS.join(", ")
      }`,
    }),
  );
};

const wrap = (
  path: string,
  tok: Tokenizer,
  eosId: number,
  chatTemplate: string | undefined,
  specialTokens: Record<string, string>,
): TextTokenizer => {
  let vocabSize = 0;
  for (const id of tok.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  const decode = (ids: ReadonlyArray<number>): string =>
    ids.length === 0
      ? ""
      : tok.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  return {
    path,
    vocabSize,
    eosId,
    encode: (text) => {
      const ids = tok.encode(text, { add_special_tokens: false }).ids;
      // The library maps unknown pieces to unk_token's id, which is undefined when the model has none.
      if (ids.some((id) => id === undefined)) {
        throw new Error(`tokenizer ${path} cannot encode ${JSON.stringify(text.slice(0, 40))}: no unk token`);
      }
      return ids;
    },
    decode,
    tokenText: (id) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize || tok.id_to_token(id) === undefined) {
        throw new RangeError(`token id ${id} is not in the vocabulary of ${path}`);
      }
      return decode([id]);
    },
    ...(chatTemplate === undefined ? {} : { chatTemplate }),
    specialTokens,
  };
};

const build = (path: string, json: Record<string, unknown>, config: Record<string, unknown>) =>
  Effect.try({
    try: () => new Tokenizer(json, config),
    catch: (e) => new TokenizerMismatch({ path, reason: `cannot build the tokenizer (${message(e)})` }),
  });

/** The vocabulary of a vocab.json: token -> non-negative integer id. */
const parseVocab = (path: string, json: unknown) =>
  Effect.suspend(() => {
    if (!isRecord(json)) return Effect.fail(new TokenizerMismatch({ path, reason: "must be a JSON object" }));
    for (const [token, id] of Object.entries(json)) {
      if (!Number.isSafeInteger(id) || (id as number) < 0) {
        return Effect.fail(
          new TokenizerMismatch({
            path,
            reason: `token ${JSON.stringify(token)} has id ${id}, not an integer >= 0`,
          }),
        );
      }
    }
    return Effect.succeed(json as Record<string, number>);
  });

/**
 * The merges of a merges.txt, in rank order. An optional first line `#version: ...` is skipped (older
 * files have it, Qwen2's does not), as are empty lines; every other line must be two symbols separated by
 * one space whose parts and concatenation are in the vocabulary, as the Rust `tokenizers` BPE builder
 * requires, so a merges.txt of another vocabulary is rejected instead of encoding wrongly.
 */
const parseMerges = (path: string, text: string, vocab: Record<string, number>) =>
  Effect.suspend(() => {
    const lines = text.split("\n");
    const merges: [string, string][] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
      if (line.length === 0 || (i === 0 && line.startsWith("#version"))) continue;
      const fail = (reason: string) =>
        Effect.fail(new TokenizerMismatch({ path: `${path}:${i + 1}`, reason }));
      const parts = line.split(" ");
      if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
        return fail(`expected two symbols separated by one space, got ${JSON.stringify(line.slice(0, 60))}`);
      }
      for (const token of [parts[0], parts[1], parts[0] + parts[1]]) {
        if (!Object.hasOwn(vocab, token)) return fail(`${JSON.stringify(token)} is not in vocab.json`);
      }
      merges.push([parts[0], parts[1]]);
    }
    return Effect.succeed(merges);
  });

interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/**
 * The added tokens a slow tokenizer has: tokenizer_config.json's `added_tokens_decoder` (id -> token), plus
 * the special tokens the config names (and GPT-2's `<|endoftext|>` when there is no config) that are not
 * among them. A named token already in vocab.json keeps its id; a new one gets the next free id, as
 * transformers' slow tokenizers do. An added token whose text is in vocab.json under another id, or whose
 * id belongs to another vocab.json token, is a mismatch between the two files.
 */
const addedTokens = (
  path: string,
  vocab: Record<string, number>,
  config: Record<string, unknown>,
  family: Family,
) =>
  Effect.suspend(() => {
    const byId = new Map<number, string>();
    for (const [token, id] of Object.entries(vocab)) byId.set(id, token);
    const out: AddedTokenJson[] = [];
    const seen = new Set<string>();
    const fail = (reason: string) => Effect.fail(new TokenizerMismatch({ path, reason }));
    const decoder = config.added_tokens_decoder;
    if (decoder !== undefined && !isRecord(decoder)) {
      return fail("added_tokens_decoder in tokenizer_config.json must be an object (id -> token)");
    }
    for (const [key, value] of Object.entries(decoder ?? {})) {
      const id = Number(key);
      const content = tokenString(value);
      if (!Number.isSafeInteger(id) || id < 0 || content === undefined) {
        return fail(`added_tokens_decoder entry ${JSON.stringify(key)} needs an integer id and a content`);
      }
      const inVocab = vocab[content];
      if (Object.hasOwn(vocab, content) && inVocab !== id) {
        return fail(`added token ${JSON.stringify(content)} has id ${id} but vocab.json gives it ${inVocab}`);
      }
      const holder = byId.get(id);
      if (holder !== undefined && holder !== content) {
        return fail(
          `added token ${JSON.stringify(content)} has id ${id}, which vocab.json gives ${
            JSON.stringify(holder)
          }`,
        );
      }
      const flags = isRecord(value) ? value : {};
      out.push({
        id,
        content,
        single_word: flags.single_word === true,
        lstrip: flags.lstrip === true,
        rstrip: flags.rstrip === true,
        normalized: flags.normalized === true,
        special: flags.special !== false,
      });
      byId.set(id, content);
      seen.add(content);
    }
    const named = [
      ...SPECIAL_NAMES.map((n) => tokenString(config[n])),
      ...(Array.isArray(config.additional_special_tokens)
        ? config.additional_special_tokens.map(tokenString)
        : []),
      ...(family === "gpt2" && Object.keys(config).length === 0 ? ["<|endoftext|>"] : []),
    ];
    let next = 0;
    for (const id of byId.keys()) next = Math.max(next, id + 1);
    for (const content of named) {
      if (content === undefined || seen.has(content)) continue;
      const id = Object.hasOwn(vocab, content) ? vocab[content] : next++;
      out.push({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      });
      seen.add(content);
    }
    return Effect.succeed(out.sort((a, b) => a.id - b.id));
  });

/** The pre-tokenizer (and normalizer) of each family's own tokenizer.json. */
const familyParts = (family: Family, config: Record<string, unknown>) => {
  if (family === "gpt2") {
    return {
      normalizer: null,
      pre_tokenizer: {
        type: "ByteLevel",
        add_prefix_space: config.add_prefix_space === true,
        trim_offsets: true,
        use_regex: true,
      },
    };
  }
  // Qwen2's slow tokenizer normalises to NFC before splitting, and its tokenizer.json has an NFC normalizer.
  return {
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: QWEN2_SPLIT }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
  };
};

/**
 * The tokenizer.json equivalent of a vocab.json + merges.txt pair: byte-level BPE (no unknown token is
 * needed, every byte has a symbol), the family's pre-tokenizer, a ByteLevel decoder, and the added tokens.
 * No post-processor: the toolkit never adds special tokens itself.
 */
const slowTokenizerJson = (dir: string, config: Record<string, unknown>) =>
  Effect.gen(function* () {
    const cls = config.tokenizer_class;
    const family: Family | undefined = cls === undefined ? "gpt2" : FAMILIES[String(cls)];
    if (family === undefined) {
      return yield* new TokenizerMismatch({
        path: `${dir}/tokenizer_config.json`,
        reason: `tokenizer_class "${cls}" is not a byte-level BPE family this toolkit knows how to split ` +
          `(${Object.keys(FAMILIES).join(", ")}); give a tokenizer.json instead of vocab.json + merges.txt`,
      });
    }
    const vocabPath = `${dir}/vocab.json`;
    const vocab = yield* readText(vocabPath).pipe(
      Effect.flatMap((t) => parseJson(vocabPath, t)),
      Effect.flatMap((j) => parseVocab(vocabPath, j)),
    );
    const mergesPath = `${dir}/merges.txt`;
    const merges = yield* readText(mergesPath).pipe(Effect.flatMap((t) => parseMerges(mergesPath, t, vocab)));
    const added = yield* addedTokens(`${dir}/tokenizer_config.json`, vocab, config, family);
    const unk = tokenString(config.unk_token);
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: added,
      ...familyParts(family, config),
      post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: unk !== undefined && Object.hasOwn(vocab, unk) ? unk : null,
        continuing_subword_prefix: "",
        end_of_word_suffix: "",
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
    } as Record<string, unknown>;
  });

/**
 * Load a tokenizer: a tokenizer.json, a directory holding one, or a directory (or its vocab.json /
 * merges.txt) with a GPT-2-style vocab.json + merges.txt pair; tokenizer_config.json from the same directory
 * supplies special tokens, added tokens, the chat template, and for the pair the model family
 * (`tokenizer_class`: GPT-2's or Qwen2's split pattern; GPT-2's when there is no config). Missing or
 * unreadable files fail with FileUnreadable; malformed JSON or merges, a structure the library rejects, an
 * unknown family, or no findable EOS token fail with TokenizerMismatch.
 */

export const loadTokenizer = (
  path: string,
): Effect.Effect<TextTokenizer, FileUnreadable | TokenizerMismatch> =>
  Effect.gen(function* () {
    const source = yield* resolveSource(path);
    const dir = source.kind === "json" ? dirOf(source.file) : source.dir;
    const config = yield* readConfig(dir);
    let tokenizerJson: Record<string, unknown>;
    let where: string;
    if (source.kind === "json") {
      where = source.file;
      const json = yield* readText(where).pipe(Effect.flatMap((text) => parseJson(where, text)));
      if (!isRecord(json) || !isRecord(json.model)) {
        return yield* new TokenizerMismatch({
          path: where,
          reason: 'not a tokenizer.json (no "model" object)',
        });
      }
      // The library iterates added_tokens unconditionally; hand-written files may omit the list.
      tokenizerJson = { added_tokens: [], ...json };
    } else {
      where = source.dir;
      tokenizerJson = yield* slowTokenizerJson(source.dir, config);
    }
    const tok = yield* build(where, tokenizerJson, config);
    const eosId = yield* findEos(where, tok, config);
    const chatTemplate = yield* readChatTemplate(dir, config);
    return wrap(where, tok, eosId, chatTemplate, specialTokensOf(config));
  });

/**
 * Fails with TokenizerMismatch when the tokenizer's ids do not fit a model's embedding of
 * `modelVocabSize` rows: the tokenizer belongs to another model (or the model to another tokenizer).
 * A model with more rows than the tokenizer has ids is fine: checkpoints often pad their embedding (Qwen2's
 * has 151936 rows for 151665 ids).
 */
export const checkVocab = (
  tok: TextTokenizer,
  modelVocabSize: number,
): Effect.Effect<void, TokenizerMismatch> =>
  tok.vocabSize <= modelVocabSize ? Effect.void : Effect.fail(
    new TokenizerMismatch({
      path: tok.path,
      reason: `its ids go up to ${tok.vocabSize - 1} but the model's embedding has ${modelVocabSize} rows: ` +
        "the tokenizer and the model do not belong together",
    }),
  );

/**
 * The `vocabSize` loadTokenizer reports for `path`, computed synchronously: pipelines size a fresh model's
 * embedding with it while they are being built. Throws the typed error loadTokenizer would give, naming
 * the file: FileUnreadable when a file is missing or unreadable, TokenizerMismatch when it is not JSON or
 * not a tokenizer (the command line reports either as one line, at build time).
 */
export const tokenizerVocabSizeSync = (path: string): number => {
  const readJson = (file: string): Record<string, unknown> => {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (e) {
      throw new FileUnreadable({ path: file, reason: message(e) });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TokenizerMismatch({ path: file, reason: `not valid JSON (${message(e)})` });
    }
    if (!isRecord(json)) throw new TokenizerMismatch({ path: file, reason: "not a JSON object" });
    return json;
  };
  const statSync = (p: string) => {
    try {
      return Deno.statSync(p);
    } catch (e) {
      throw new FileUnreadable({ path: p, reason: message(e) });
    }
  };
  const isFileSync = (file: string) => {
    try {
      return Deno.statSync(file).isFile;
    } catch {
      return false;
    }
  };
  let dir = path.replace(/(.)\/+$/, "$1");
  let file: string | undefined = path;
  if (statSync(path).isDirectory) {
    file = isFileSync(`${dir}/tokenizer.json`) ? `${dir}/tokenizer.json` : undefined;
  } else if (/(^|\/)(vocab\.json|merges\.txt)$/.test(path)) [dir, file] = [dirOf(path), undefined];
  else dir = dirOf(path);
  let size = 0;
  const see = (id: unknown) => {
    if (typeof id === "number") size = Math.max(size, id + 1);
  };
  if (file !== undefined) {
    const json = readJson(file);
    if (!isRecord(json.model)) {
      throw new TokenizerMismatch({ path: file, reason: 'not a tokenizer.json (no "model" object)' });
    }
    for (
      const id of Object.values(isRecord(json.model) && isRecord(json.model.vocab) ? json.model.vocab : {})
    ) see(id);
    for (const t of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
      see(isRecord(t) ? t.id : undefined);
    }
    return size;
  }
  const config = isFileSync(`${dir}/tokenizer_config.json`) ? readJson(`${dir}/tokenizer_config.json`) : {};
  const family: Family = FAMILIES[String(config.tokenizer_class)] ?? "gpt2";
  // Their typed failure itself, not the FiberFailure runSync would wrap it in.
  const orThrow = <A, E>(effect: Effect.Effect<A, E>): A =>
    Either.getOrThrowWith(Effect.runSync(Effect.either(effect)), (e) => e);
  const vocab = orThrow(parseVocab(`${dir}/vocab.json`, readJson(`${dir}/vocab.json`)));
  for (const id of Object.values(vocab)) see(id);
  for (const t of orThrow(addedTokens(dir, vocab, config, family))) see(t.id);
  return size;
};
