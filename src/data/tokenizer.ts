/**
 * Hugging Face `tokenizer.json` loading through @huggingface/tokenizers, behind a small interface.
 *
 * The interface deliberately has no special-token handling: `encode` never adds BOS/EOS (the toolkit
 * appends EOS itself, see tokenise.ts) and `decode` never cleans up spaces, so that
 * `decode(encode(x)) === x` for byte-level tokenizers and key spans map to exact characters.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { Effect } from "effect";
import { FileUnreadable, TokenizerMismatch } from "../errors.ts";

export interface TextTokenizer {
  /** The tokenizer.json file it was loaded from. */
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
}

/** Names tried, in order, when tokenizer_config.json does not say which token ends a sequence. */
const EOS_FALLBACKS = ["<|endoftext|>", "</s>", "<|im_end|>"];

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

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

/** Resolve a directory to the tokenizer.json inside it, so a model directory can be passed as is. */
const resolveFile = (path: string) =>
  Effect.tryPromise({
    try: async () => {
      const info = await Deno.stat(path);
      if (info.isDirectory) {
        const inner = `${path.replace(/\/+$/, "")}/tokenizer.json`;
        const innerInfo = await Deno.stat(inner).catch(() => undefined);
        if (!innerInfo?.isFile) throw new Error("is a directory without a tokenizer.json");
        return inner;
      }
      if (!info.isFile) throw new Error("not a regular file");
      return path;
    },
    catch: (e) => new FileUnreadable({ path, reason: message(e) }),
  });

/** tokenizer_config.json beside the tokenizer, or an empty config when there is none. */
const readConfig = (tokenizerFile: string) => {
  const slash = tokenizerFile.lastIndexOf("/");
  const configPath = `${slash < 0 ? "." : tokenizerFile.slice(0, slash)}/tokenizer_config.json`;
  return Effect.tryPromise({
    try: () => Deno.stat(configPath).then((i) => i.isFile, () => false),
    catch: () => new FileUnreadable({ path: configPath, reason: "cannot stat" }),
  }).pipe(
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

/** eos_token in tokenizer_config.json is a string, or an object with `content` in older files. */
const configuredEos = (config: Record<string, unknown>): string | undefined => {
  const eos = config.eos_token;
  if (typeof eos === "string") return eos;
  if (isRecord(eos) && typeof eos.content === "string") return eos.content;
  return undefined;
};

const findEos = (path: string, tok: Tokenizer, config: Record<string, unknown>) => {
  const named = configuredEos(config);
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

const wrap = (path: string, tok: Tokenizer, eosId: number): TextTokenizer => {
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
  };
};

/**
 * Load a Hugging Face tokenizer.json (or a directory holding one), with tokenizer_config.json from the same
 * directory when present. Missing or unreadable files fail with FileUnreadable; malformed JSON, a structure
 * the library rejects, or no findable EOS token fail with TokenizerMismatch.
 */
export const loadTokenizer = (
  path: string,
): Effect.Effect<TextTokenizer, FileUnreadable | TokenizerMismatch> =>
  Effect.gen(function* () {
    const file = yield* resolveFile(path);
    const json = yield* readText(file).pipe(Effect.flatMap((text) => parseJson(file, text)));
    if (!isRecord(json) || !isRecord(json.model)) {
      return yield* new TokenizerMismatch({ path: file, reason: 'not a tokenizer.json (no "model" object)' });
    }
    // The library iterates added_tokens unconditionally; hand-written files may omit the list.
    const tokenizerJson = { added_tokens: [], ...json };
    const config = yield* readConfig(file);
    const tok = yield* Effect.try({
      try: () => new Tokenizer(tokenizerJson, config),
      catch: (e) =>
        new TokenizerMismatch({ path: file, reason: `cannot build the tokenizer (${message(e)})` }),
    });
    const eosId = yield* findEos(file, tok, config);
    return wrap(file, tok, eosId);
  });
