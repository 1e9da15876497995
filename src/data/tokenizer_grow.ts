/**
 * Adding special tokens to a tokenizer on disk, as `tokenizer.add_special_tokens` followed by
 * `save_pretrained` does in transformers: each new token gets the next free id (one past the largest id
 * the tokenizer has) and is recorded
 *   - in tokenizer.json's `added_tokens` (special, not normalised, no stripping), for a fast tokenizer;
 *   - in tokenizer_config.json's `added_tokens_decoder` (id -> token) and `additional_special_tokens`, for
 *     both layouts (a vocab.json + merges.txt pair reads its added tokens from there, so for that layout
 *     every added token it already had is written out with its id too, which keeps those ids fixed);
 *   - in added_tokens.json and special_tokens_map.json when the tokenizer has them.
 * The result is a set of files to write into a directory; nothing is written here.
 */
import { Effect } from "effect";
import { FileUnreadable, TokenizerMismatch } from "../errors.ts";
import { type AddedToken, loadTokenizer, readTokenizerLayout } from "./tokenizer.ts";

export interface GrownTokenizer {
  /** File name -> content: the rewritten tokenizer files (and vocab.json / merges.txt for that layout). */
  readonly files: Readonly<Record<string, string>>;
  /** The id of each new token, in the order given. */
  readonly ids: ReadonlyArray<number>;
  /** One more than the largest id after the addition. */
  readonly vocabSize: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";

const readOptionalJson = (path: string) =>
  Effect.tryPromise({
    try: async () => {
      const text = await Deno.readTextFile(path).catch(() => undefined);
      return text === undefined ? undefined : JSON.parse(text) as unknown;
    },
    catch: (e) =>
      new TokenizerMismatch({ path, reason: `not valid JSON (${e instanceof Error ? e.message : e})` }),
  });

const readText = (path: string) =>
  Effect.tryPromise({
    try: () => Deno.readTextFile(path),
    catch: (e) => new FileUnreadable({ path, reason: e instanceof Error ? e.message : String(e) }),
  });

const addedEntry = (id: number, content: string): AddedToken => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});

/** The decoder entry tokenizer_config.json keeps for an added token (transformers' field order). */
const decoderEntry = (t: AddedToken) => ({
  content: t.content,
  lstrip: t.lstrip,
  normalized: t.normalized,
  rstrip: t.rstrip,
  single_word: t.single_word,
  special: t.special,
});

/**
 * The files of the tokenizer at `path` (a tokenizer.json, or a directory or file of a vocab.json +
 * merges.txt pair) with `tokens` added as special tokens. A token the tokenizer already has, or a token
 * given twice, is a TokenizerMismatch: adding it again would give one text two ids.
 */
export const growTokenizer = (
  path: string,
  tokens: ReadonlyArray<string>,
): Effect.Effect<GrownTokenizer, FileUnreadable | TokenizerMismatch> =>
  Effect.gen(function* () {
    const layout = yield* readTokenizerLayout(path);
    const tok = yield* loadTokenizer(path);
    const where = layout.kind === "json" ? layout.file : layout.dir;
    const fail = (reason: string) => Effect.fail(new TokenizerMismatch({ path: where, reason }));
    const existing = new Set<string>(
      layout.kind === "json"
        ? [
          ...Object.keys(
            isRecord(layout.json.model) && isRecord(layout.json.model.vocab) ? layout.json.model.vocab : {},
          ),
          ...(Array.isArray(layout.json.added_tokens) ? layout.json.added_tokens : []).map((t) =>
            isRecord(t) ? String(t.content) : ""
          ),
        ]
        : [...Object.keys(layout.vocab), ...layout.added.map((t) => t.content)],
    );
    const seen = new Set<string>();
    for (const t of tokens) {
      if (t.length === 0) return yield* fail("cannot add an empty token");
      if (existing.has(t)) return yield* fail(`${JSON.stringify(t)} is already in the vocabulary`);
      if (seen.has(t)) return yield* fail(`${JSON.stringify(t)} is given twice`);
      seen.add(t);
    }
    const ids = tokens.map((_, i) => tok.vocabSize + i);
    const added = tokens.map((t, i) => addedEntry(ids[i], t));
    const files: Record<string, string> = {};

    if (layout.kind === "json") {
      const list = Array.isArray(layout.json.added_tokens) ? layout.json.added_tokens : [];
      files["tokenizer.json"] = json({ ...layout.json, added_tokens: [...list, ...added] });
    } else {
      files["vocab.json"] = yield* readText(`${layout.dir}/vocab.json`);
      files["merges.txt"] = yield* readText(`${layout.dir}/merges.txt`);
    }
    if (layout.hasConfig || layout.kind === "slow") {
      const decoder: Record<string, unknown> = isRecord(layout.config.added_tokens_decoder)
        ? { ...layout.config.added_tokens_decoder }
        : {};
      for (const t of [...(layout.kind === "slow" ? layout.added : []), ...added]) {
        decoder[String(t.id)] = decoderEntry(t);
      }
      const special = Array.isArray(layout.config.additional_special_tokens)
        ? layout.config.additional_special_tokens
        : [];
      files["tokenizer_config.json"] = json({
        ...layout.config,
        added_tokens_decoder: decoder,
        additional_special_tokens: [...special, ...tokens],
      });
    }
    const addedJson = yield* readOptionalJson(`${layout.dir}/added_tokens.json`);
    if (isRecord(addedJson)) {
      files["added_tokens.json"] = json({
        ...addedJson,
        ...Object.fromEntries(added.map((t) => [t.content, t.id])),
      });
    }
    const specialMap = yield* readOptionalJson(`${layout.dir}/special_tokens_map.json`);
    if (isRecord(specialMap)) {
      const list = Array.isArray(specialMap.additional_special_tokens)
        ? specialMap.additional_special_tokens
        : [];
      files["special_tokens_map.json"] = json({
        ...specialMap,
        additional_special_tokens: [...list, ...tokens],
      });
    }
    return { files, ids, vocabSize: tok.vocabSize + tokens.length };
  });
