/**
 * The on-disk records that flow between the data steps, one JSON object per line (JSONL), so a user
 * can open any intermediate and see exactly what the next step consumed.
 *
 *   locateKey  -> located.jsonl  LocatedRecord   prompt/response text, the key's character span and
 *                                                where the answer part begins
 *   tokenise   -> tokens.jsonl   TokenRecord     token ids with the prompt length, key and answer spans
 *   buildMasks -> masked.jsonl   MaskedRecord    token ids with a loss weight per token
 */
import { Effect, type Scope } from "effect";
import { FileUnreadable, WriteFailed } from "../errors.ts";
import { AtomicWriter, type Line, LineReader } from "../io/lines.ts";
import type { ChatMessage } from "./chat.ts";

export interface LocatedRecord {
  /** file:line of the row this came from. */
  readonly source: string;
  readonly prompt: string;
  readonly response: string;
  /** Character span [start, end) of the key inside `response`. */
  readonly key: { readonly start: number; readonly end: number };
  /** The key text, response.slice(key.start, key.end): the gold answer. */
  readonly answer: string;
  /** Where the answer part (everything after the thinking part) begins in `response`. */
  readonly answer_start: number;
  /** "messages" format: the conversation before the response (the last assistant turn's content). */
  readonly chat?: ReadonlyArray<ChatMessage>;
}

export interface TokenRecord {
  readonly source: string;
  readonly input_ids: ReadonlyArray<number>;
  /** Tokens [0, prompt_length) are the prompt; the rest is the response, ending with EOS unless truncated. */
  readonly prompt_length: number;
  /** Token span [start, end) of the key. */
  readonly key: { readonly start: number; readonly end: number };
  /** Token span [start, end) of the answer part: from the end of the thinking part to the end (EOS). */
  readonly answer_part: { readonly start: number; readonly end: number };
  readonly answer: string;
}

export interface MaskedRecord extends TokenRecord {
  /** weights[t] is the loss weight on predicting input_ids[t] from the tokens before it. */
  readonly weights: ReadonlyArray<number>;
}

/**
 * A JSONL file read in batches of rows: files of any size stream through in about a megabyte at a time.
 * `next` gives the next rows (at least one) or undefined at the end.
 */
export interface JsonlReader<T> {
  readonly next: Effect.Effect<ReadonlyArray<T> | undefined, FileUnreadable>;
}

/** Opens a JSONL file this toolkit wrote itself (already validated when it was written); closed with the scope. */
export const openJsonl = <T>(path: string): Effect.Effect<JsonlReader<T>, FileUnreadable, Scope.Scope> =>
  Effect.map(openLines(path), (lines) => ({
    next: Effect.flatMap(lines.next, (batch) =>
      batch === undefined ? Effect.succeed(undefined) : Effect.try({
        try: () => {
          const rows: T[] = [];
          for (const l of batch) rows.push(parseLine<T>(l));
          return rows;
        },
        catch: (e) => new FileUnreadable({ path, reason: reasonOf(e) }),
      })),
  }));

const parseLine = <T>(l: Line): T => {
  try {
    return JSON.parse(l.text) as T;
  } catch (e) {
    throw new Error(`line ${l.line}: not valid JSON (${reasonOf(e)})`);
  }
};

/** Lines of a file in batches, for readers that parse them their own way (the data formats). */
export interface LineBatches {
  readonly next: Effect.Effect<ReadonlyArray<Line> | undefined, FileUnreadable>;
}

/** A missing file, a directory, or a line that is not UTF-8 is FileUnreadable (the latter naming the line). */
export const openLines = (path: string): Effect.Effect<LineBatches, FileUnreadable, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.tryPromise({
        try: () => LineReader.open(path),
        catch: (e) => new FileUnreadable({ path, reason: reasonOf(e) }),
      }),
      (reader) => Effect.sync(() => reader.close()),
    ),
    (reader) => ({
      next: Effect.tryPromise({
        try: () => reader.next(),
        catch: (e) => new FileUnreadable({ path, reason: reasonOf(e) }),
      }),
    }),
  );

/** A JSONL file written in batches of rows; it appears under its name only on `commit`. */
export interface JsonlWriter {
  readonly write: (rows: ReadonlyArray<unknown>) => Effect.Effect<void, WriteFailed>;
  /** Number of rows written so far. */
  readonly count: () => number;
  readonly commit: Effect.Effect<void, WriteFailed>;
}

/** Starts a JSONL file; if the scope closes before `commit`, nothing is left behind. */
export const createJsonl = (path: string): Effect.Effect<JsonlWriter, WriteFailed, Scope.Scope> => {
  const fail = (e: unknown) => new WriteFailed({ path, reason: reasonOf(e) });
  return Effect.map(
    Effect.acquireRelease(
      Effect.tryPromise({ try: () => AtomicWriter.open(path), catch: fail }),
      (writer) => Effect.promise(() => writer.abort()),
    ),
    (writer) => {
      let rows = 0;
      return {
        write: (batch) =>
          Effect.tryPromise({
            try: async () => {
              // Joined into pieces of about a megabyte: one write call per row would dominate, and one
              // string of the whole batch could pass the string limit.
              let parts: string[] = [];
              let chars = 0;
              for (const r of batch) {
                const line = JSON.stringify(r);
                parts.push(line, "\n");
                chars += line.length + 1;
                if (chars >= 1 << 20) {
                  await writer.write(parts.join(""));
                  parts = [];
                  chars = 0;
                }
              }
              if (parts.length > 0) await writer.write(parts.join(""));
              rows += batch.length;
            },
            catch: fail,
          }),
        count: () => rows,
        commit: Effect.tryPromise({ try: () => writer.commit(), catch: fail }),
      };
    },
  );
};

export const writeJsonl = (path: string, rows: ReadonlyArray<unknown>): Effect.Effect<void, WriteFailed> =>
  Effect.scoped(Effect.gen(function* () {
    const writer = yield* createJsonl(path);
    yield* writer.write(rows);
    yield* writer.commit;
  }));

/**
 * Reads a whole JSONL file this toolkit wrote itself into memory: for files known to be small (logs,
 * predictions, a report's masks). Data steps stream theirs with `openJsonl`.
 */
export const readJsonl = <T>(path: string): Effect.Effect<T[], FileUnreadable> =>
  Effect.scoped(Effect.gen(function* () {
    const reader = yield* openJsonl<T>(path);
    const out: T[] = [];
    for (let batch = yield* reader.next; batch !== undefined; batch = yield* reader.next) {
      for (const r of batch) out.push(r);
    }
    return out;
  }));

/**
 * The training view of a masked dataset: token ids and weights only, streamed in so that no whole-file
 * string is made, and without the text fields training does not use.
 */
export const readTrainingRows = (
  path: string,
): Effect.Effect<Array<{ ids: ReadonlyArray<number>; weights: ReadonlyArray<number> }>, FileUnreadable> =>
  Effect.scoped(Effect.gen(function* () {
    const reader = yield* openJsonl<MaskedRecord>(path);
    const out: Array<{ ids: ReadonlyArray<number>; weights: ReadonlyArray<number> }> = [];
    for (let batch = yield* reader.next; batch !== undefined; batch = yield* reader.next) {
      for (const r of batch) out.push({ ids: r.input_ids, weights: r.weights });
    }
    return out;
  }));

const reasonOf = (e: unknown) => (e instanceof Error ? e.message : String(e));
