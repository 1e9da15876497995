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

/**
 * The file access a load needs. The loading logic below is one Effect written against it; loadTokenizer
 * runs it on Deno's asynchronous calls and tokenizerVocabSizeSync on the synchronous ones, so the two give
 * the same tokenizer, or the same error, for the same files.
 */
interface FileAccess {
  /** What is at `path`; fails with the system's error when nothing can be stat'ed there. */
  readonly kind: (path: string) => Effect.Effect<"file" | "directory" | "other", unknown>;
  /** The text of the file at `path`. */
  readonly readText: (path: string) => Effect.Effect<string, FileUnreadable>;
}

const kindOf = (info: Deno.FileInfo) =>
  info.isFile ? "file" as const : info.isDirectory ? "directory" as const : "other" as const;

const asyncFiles: FileAccess = {
  kind: (path) => Effect.tryPromise({ try: () => Deno.stat(path), catch: (e) => e }).pipe(Effect.map(kindOf)),
  readText: (path) =>
    Effect.tryPromise({
      try: () => Deno.readTextFile(path),
      catch: (e) => new FileUnreadable({ path, reason: message(e) }),
    }),
};

const syncFiles: FileAccess = {
  kind: (path) => Effect.try({ try: () => Deno.statSync(path), catch: (e) => e }).pipe(Effect.map(kindOf)),
  readText: (path) =>
    Effect.try({
      try: () => Deno.readTextFileSync(path),
      catch: (e) => new FileUnreadable({ path, reason: message(e) }),
    }),
};

const parseJson = (path: string, text: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (e) => new TokenizerMismatch({ path, reason: `not valid JSON (${message(e)})` }),
  });

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const isFile = (fs: FileAccess, path: string): Effect.Effect<boolean> =>
  fs.kind(path).pipe(Effect.map((k) => k === "file"), Effect.orElseSucceed(() => false));

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
 * directory), or a directory (a model directory works as is, and so does a step artifact holding one in
 * model/); a directory's tokenizer.json wins over a
 * vocab.json + merges.txt pair, as in Hugging Face's loaders.
 */
const resolveSource = (fs: FileAccess, path: string): Effect.Effect<Source, FileUnreadable> =>
  Effect.gen(function* () {
    const unreadable = (reason: string) => new FileUnreadable({ path, reason });
    const kind = yield* fs.kind(path).pipe(Effect.mapError((e) => unreadable(message(e))));
    if (kind === "directory") {
      const dir = path.replace(/(.)\/+$/, "$1");
      if (yield* isFile(fs, `${dir}/tokenizer.json`)) return { kind: "json", file: `${dir}/tokenizer.json` };
      if ((yield* isFile(fs, `${dir}/vocab.json`)) && (yield* isFile(fs, `${dir}/merges.txt`))) {
        return { kind: "slow", dir };
      }
      // A step's artifact holding a checkpoint in model/ (train, addTokens): the checkpoint's tokenizer.
      if (!dir.endsWith("/model") && (yield* isFile(fs, `${dir}/model/config.json`))) {
        return yield* resolveSource(fs, `${dir}/model`);
      }
      return yield* unreadable("is a directory without a tokenizer.json or a vocab.json + merges.txt pair");
    }
    if (kind !== "file") return yield* unreadable("not a regular file");
    const name = path.slice(path.lastIndexOf("/") + 1);
    if (name === "vocab.json" || name === "merges.txt") {
      const dir = dirOf(path);
      const other = `${dir}/${name === "vocab.json" ? "merges.txt" : "vocab.json"}`;
      if (!(yield* isFile(fs, other))) {
        return yield* unreadable(`${other} is missing (vocab.json and merges.txt go together)`);
      }
      return { kind: "slow", dir };
    }
    return { kind: "json", file: path };
  });

/** tokenizer_config.json in `dir`, or an empty config when there is none. */
const readConfig = (fs: FileAccess, dir: string) => {
  const configPath = `${dir}/tokenizer_config.json`;
  return isFile(fs, configPath).pipe(
    Effect.flatMap((exists) =>
      exists
        ? fs.readText(configPath).pipe(
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
const readChatTemplate = (fs: FileAccess, dir: string, config: Record<string, unknown>) =>
  Effect.gen(function* () {
    const t = config.chat_template;
    if (typeof t === "string") return t;
    if (Array.isArray(t)) {
      const named = t.find((e) => isRecord(e) && e.name === "default");
      if (isRecord(named) && typeof named.template === "string") return named.template;
    }
    const file = `${dir}/chat_template.jinja`;
    if (yield* isFile(fs, file)) return yield* fs.readText(file);
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
const slowTokenizerJson = (fs: FileAccess, dir: string, config: Record<string, unknown>) =>
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
    const vocab = yield* fs.readText(vocabPath).pipe(
      Effect.flatMap((t) => parseJson(vocabPath, t)),
      Effect.flatMap((j) => parseVocab(vocabPath, j)),
    );
    const mergesPath = `${dir}/merges.txt`;
    const merges = yield* fs.readText(mergesPath).pipe(
      Effect.flatMap((t) => parseMerges(mergesPath, t, vocab)),
    );
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
): Effect.Effect<TextTokenizer, FileUnreadable | TokenizerMismatch> => load(asyncFiles, path);

/** loadTokenizer's logic, on the file access given. */
const load = (
  fs: FileAccess,
  path: string,
): Effect.Effect<TextTokenizer, FileUnreadable | TokenizerMismatch> =>
  Effect.gen(function* () {
    const source = yield* resolveSource(fs, path);
    const dir = source.kind === "json" ? dirOf(source.file) : source.dir;
    const config = yield* readConfig(fs, dir);
    let tokenizerJson: Record<string, unknown>;
    let where: string;
    if (source.kind === "json") {
      where = source.file;
      const json = yield* fs.readText(where).pipe(Effect.flatMap((text) => parseJson(where, text)));
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
      tokenizerJson = yield* slowTokenizerJson(fs, source.dir, config);
    }
    const tok = yield* build(where, tokenizerJson, config);
    const eosId = yield* findEos(where, tok, config);
    const chatTemplate = yield* readChatTemplate(fs, dir, config);
    return wrap(where, tok, eosId, chatTemplate, specialTokensOf(config));
  });

/** A file loadTokenizer reads: where it is, and the name it has in a checkpoint directory. */
export interface TokenizerFile {
  readonly from: string;
  readonly name: string;
}

/**
 * The files loadTokenizer reads for `path`, as a checkpoint directory names them: the tokenizer.json (under
 * that name whatever the file was called) or vocab.json + merges.txt, tokenizer_config.json when present,
 * and chat_template.jinja when the template comes from it. A model saved with exactly these files loads
 * with the same tokenizer here and in Hugging Face's loaders.
 */
export const tokenizerFiles = (
  path: string,
): Effect.Effect<ReadonlyArray<TokenizerFile>, FileUnreadable | TokenizerMismatch> =>
  Effect.gen(function* () {
    const source = yield* resolveSource(asyncFiles, path);
    const dir = source.kind === "json" ? dirOf(source.file) : source.dir;
    const files: TokenizerFile[] = source.kind === "json"
      ? [{ from: source.file, name: "tokenizer.json" }]
      : [{ from: `${dir}/vocab.json`, name: "vocab.json" }, {
        from: `${dir}/merges.txt`,
        name: "merges.txt",
      }];
    const configPath = `${dir}/tokenizer_config.json`;
    if (yield* isFile(asyncFiles, configPath)) {
      files.push({ from: configPath, name: "tokenizer_config.json" });
    }
    const config = yield* readConfig(asyncFiles, dir);
    const t = config.chat_template;
    const inConfig = typeof t === "string" ||
      (Array.isArray(t) &&
        t.some((e) => isRecord(e) && e.name === "default" && typeof e.template === "string"));
    const jinja = `${dir}/chat_template.jinja`;
    if (!inConfig && (yield* isFile(asyncFiles, jinja))) {
      files.push({ from: jinja, name: "chat_template.jinja" });
    }
    return files;
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
 * embedding with it while they are being built. It is loadTokenizer itself run on synchronous file reads,
 * so it throws the typed error loadTokenizer would fail with (the command line reports either as one line,
 * at build time).
 */
export const tokenizerVocabSizeSync = (path: string): number =>
  // The typed failure itself, not the FiberFailure runSync would wrap it in.
  Either.getOrThrowWith(Effect.runSync(Effect.either(load(syncFiles, path))), (e) => e).vocabSize;

/** An added token as tokenizer.json lists it. */
export type AddedToken = AddedTokenJson;

/**
 * What a tokenizer is made of on disk, for tools that rewrite it (adding tokens): a tokenizer.json with
 * its parsed content, or a vocab.json + merges.txt pair with its vocabulary and the added tokens it
 * implies (tokenizer_config.json's added_tokens_decoder plus the named special tokens, with their ids);
 * `config` is tokenizer_config.json, empty when there is none (`hasConfig` says which).
 */
export type TokenizerLayout =
  | {
    readonly kind: "json";
    readonly file: string;
    readonly dir: string;
    readonly json: Record<string, unknown>;
    readonly config: Record<string, unknown>;
    readonly hasConfig: boolean;
  }
  | {
    readonly kind: "slow";
    readonly dir: string;
    readonly vocab: Record<string, number>;
    readonly added: ReadonlyArray<AddedToken>;
    readonly config: Record<string, unknown>;
    readonly hasConfig: boolean;
  };

export const readTokenizerLayout = (
  path: string,
): Effect.Effect<TokenizerLayout, FileUnreadable | TokenizerMismatch> =>
  Effect.gen(function* () {
    const source = yield* resolveSource(asyncFiles, path);
    const dir = source.kind === "json" ? dirOf(source.file) : source.dir;
    const hasConfig = yield* isFile(asyncFiles, `${dir}/tokenizer_config.json`);
    const config = yield* readConfig(asyncFiles, dir);
    if (source.kind === "json") {
      const json = yield* asyncFiles.readText(source.file).pipe(
        Effect.flatMap((t) => parseJson(source.file, t)),
      );
      if (!isRecord(json) || !isRecord(json.model)) {
        return yield* new TokenizerMismatch({
          path: source.file,
          reason: 'not a tokenizer.json (no "model" object)',
        });
      }
      return { kind: "json" as const, file: source.file, dir, json, config, hasConfig };
    }
    const cls = config.tokenizer_class;
    const family: Family = cls === undefined ? "gpt2" : FAMILIES[String(cls)] ?? "gpt2";
    const vocabPath = `${dir}/vocab.json`;
    const vocab = yield* asyncFiles.readText(vocabPath).pipe(
      Effect.flatMap((t) => parseJson(vocabPath, t)),
      Effect.flatMap((j) => parseVocab(vocabPath, j)),
    );
    const added = yield* addedTokens(`${dir}/tokenizer_config.json`, vocab, config, family);
    return { kind: "slow" as const, dir, vocab, added, config, hasConfig };
  });
