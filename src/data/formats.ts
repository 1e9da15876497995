/**
 * Input data formats: one JSON object per line (JSONL), validated row by row into `RawExample`s.
 *
 * Every format is reduced to the same shape (prompt, response, optional separate answer) so the rest of the
 * toolkit never looks at format-specific fields. A bad row stops loading with `InvalidRow` naming the file,
 * the 1-based line and the field, because silently skipping rows would change what is trained on.
 */
import { Effect, ParseResult, Schema } from "effect";
import { FileUnreadable, InvalidRow } from "../errors.ts";
import type { LocatorSpec } from "./locate.ts";
import type { ChatMessage } from "./chat.ts";

/** The supported row formats. */
export const DataFormat: Schema.Literal<["tags", "gsm8k", "reasoning", "math", "messages"]> = Schema.Literal(
  "tags",
  "gsm8k",
  "reasoning",
  "math",
  "messages",
);
/** A supported row format's name. */
export type DataFormat = typeof DataFormat.Type;

/** One example in format-independent form. */
export interface RawExample {
  /** Where the row came from, `file:line` (1-based), for error messages. */
  readonly source: string;
  readonly prompt: string;
  readonly response: string;
  /** The answer given as its own field ("reasoning" format); the "field" locator searches for it. */
  readonly answerField?: string;
  /**
   * "messages" format: the conversation before the last assistant turn; `response` is that turn's content
   * and `prompt` the last message before it. Tokenisation renders them with the tokenizer's chat template.
   */
  readonly chat?: ReadonlyArray<ChatMessage>;
}

/** The key locator that fits each format when the user names none. */
export const defaultLocator: { readonly [F in DataFormat]: LocatorSpec } = {
  tags: { kind: "answer-tags" },
  gsm8k: { kind: "gsm8k" },
  reasoning: { kind: "field" },
  math: { kind: "boxed" },
  // The row's optional "answer" field; a pipeline names another locator (gsm8k, boxed, ...) for rows without.
  messages: { kind: "field" },
};

/** A string with some non-whitespace: an empty prompt or response gives nothing to condition or train on. */
const Text = Schema.String.pipe(
  Schema.filter((s) => s.trim().length > 0, { message: () => "must not be empty" }),
);

/** `<Thinking>...</Thinking><Answer>...</Answer>` responses, as in the SFTKey paper. */
const TagsRow = Schema.Struct({ prompt: Text, response: Text });
/** GSM8K: the answer is the worked solution ending in a `#### N` line. */
const Gsm8kRow = Schema.Struct({ question: Text, answer: Text });
/** Reasoning and answer as separate fields; rendered into the tags layout. */
const ReasoningRow = Schema.Struct({ prompt: Text, reasoning: Schema.String, answer: Text });
/** MATH-style: a solution with a `\boxed{...}` answer; extra fields (level, type, ...) are ignored. */
const MathRow = Schema.Struct({ problem: Text, solution: Text });

/**
 * Chat conversations: `{"messages": [{"role", "content"}, ...]}` ending with the assistant turn that is
 * trained on (the key is located in it), and an optional "answer" for the default "field" locator.
 */
const Message = Schema.Struct({ role: Text, content: Schema.String });
const MessagesRow = Schema.Struct({
  messages: Schema.NonEmptyArray(Message).pipe(
    Schema.filter((m) => m[m.length - 1].role === "assistant" && m[m.length - 1].content.trim().length > 0, {
      message: () => "must end with an assistant message with non-empty content",
    }),
  ),
  answer: Schema.optional(Text),
});

type Converted = { ok: true; value: Omit<RawExample, "source"> } | {
  ok: false;
  field?: string;
  reason: string;
};
type Convert = (row: unknown) => Converted;

/** Validate with `schema` and map to a RawExample, turning the first schema issue into field + reason. */
const converter = <A, I>(schema: Schema.Schema<A, I>, toExample: (a: A) => Omit<RawExample, "source">) => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "first" });
  return (row: unknown): Converted => {
    const result = decode(row);
    if (result._tag === "Right") return { ok: true, value: toExample(result.right) };
    const issue = ParseResult.ArrayFormatter.formatErrorSync(result.left)[0];
    const field = issue?.path.length ? issue.path.map(String).join(".") : undefined;
    return { ok: false, field, reason: issue?.message ?? "does not match the format" };
  };
};

const converters: { readonly [F in DataFormat]: Convert } = {
  tags: converter(TagsRow, (r) => ({ prompt: r.prompt, response: r.response })),
  gsm8k: converter(Gsm8kRow, (r) => ({ prompt: r.question, response: r.answer })),
  reasoning: converter(ReasoningRow, (r) => ({
    prompt: r.prompt,
    response: `<Thinking>${r.reasoning}</Thinking><Answer>${r.answer}</Answer>`,
    answerField: r.answer,
  })),
  math: converter(MathRow, (r) => ({ prompt: r.problem, response: r.solution })),
  messages: converter(MessagesRow, (r) => ({
    prompt: r.messages.length > 1 ? r.messages[r.messages.length - 2].content : "",
    response: r.messages[r.messages.length - 1].content,
    chat: r.messages.slice(0, -1).map((m) => ({ role: m.role, content: m.content })),
    ...(r.answer === undefined ? {} : { answerField: r.answer }),
  })),
};

const isObject = (v: unknown): boolean => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Parse one JSONL file's bytes. Lines are split on bytes, and each line is decoded on its own with a fatal
 * UTF-8 decoder, so invalid bytes are reported at their line instead of being replaced by U+FFFD.
 */
export const parseExamples = (
  file: string,
  bytes: Uint8Array,
  format: DataFormat,
): Effect.Effect<RawExample[], InvalidRow> =>
  Effect.suspend(() => {
    const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
    const convert = converters[format];
    const examples: RawExample[] = [];
    let lineStart = 0;
    for (let lineNo = 1; lineStart < bytes.length; lineNo++) {
      const newline = bytes.indexOf(0x0a, lineStart);
      const lineEnd = newline < 0 ? bytes.length : newline;
      const lineBytes = bytes.subarray(lineStart, lineEnd);
      lineStart = lineEnd + 1;
      const fail = (reason: string, field?: string) =>
        Effect.fail(new InvalidRow({ file, line: lineNo, field, reason }));
      let text: string;
      try {
        text = decoder.decode(lineBytes);
      } catch {
        return fail("not valid UTF-8");
      }
      if (text.trim().length === 0) continue;
      let row: unknown;
      try {
        row = JSON.parse(text);
      } catch (e) {
        return fail(`not valid JSON (${e instanceof Error ? e.message : String(e)})`);
      }
      if (!isObject(row)) return fail("expected a JSON object");
      const converted = convert(row);
      if (!converted.ok) return fail(converted.reason, converted.field);
      examples.push({ source: `${file}:${lineNo}`, ...converted.value });
    }
    return Effect.succeed(examples);
  });

/** Read a JSONL file in the given format. An empty file gives no examples (callers decide if that is an error). */
export const readExamples = (
  path: string,
  format: DataFormat,
): Effect.Effect<RawExample[], FileUnreadable | InvalidRow> =>
  Effect.tryPromise({
    try: async () => {
      const info = await Deno.stat(path);
      if (!info.isFile) throw new Error("not a regular file");
      return await Deno.readFile(path);
    },
    catch: (e) => new FileUnreadable({ path, reason: e instanceof Error ? e.message : String(e) }),
  }).pipe(Effect.flatMap((bytes) => parseExamples(path, bytes, format)));
