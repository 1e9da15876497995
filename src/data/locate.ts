/**
 * Key locators: find the "key" (the answer span SFTKey's second stage trains on) inside a response.
 *
 * Every locator works on plain response text and returns a character span `{start, end}` (UTF-16 indices,
 * end exclusive) or `undefined` when the key is absent. An empty span is never returned: a key of zero
 * characters would give stage two nothing to train on, so callers should treat it like a missing key.
 *
 * The same locators extract answers from generated text at evaluation time (`extractAnswer`), so that
 * training and scoring agree on what "the answer" is.
 */
import { Schema } from "effect";

/** A character span in a string; `end` is exclusive. */
export interface CharSpan {
  readonly start: number;
  readonly end: number;
}

/**
 * `d` gives group indices; `g` lets us walk every match to keep the last; `m` makes `^`/`$` match at line
 * boundaries, because responses are multi-line and a key usually sits on its own line.
 */
const REGEX_FLAGS = "dgm";

const compiles = (pattern: string): boolean => {
  try {
    new RegExp(pattern, REGEX_FLAGS);
    return true;
  } catch {
    return false;
  }
};

/** Number of capturing groups in a pattern (matching the empty alternative always succeeds). */
const groupCount = (pattern: string): number => new RegExp(`${pattern}|`).exec("")!.length - 1;

const NonEmpty = Schema.String.pipe(Schema.minLength(1));

/** @internal One member of LocatorSpec. */
const AnswerTags = Schema.Struct({
  kind: Schema.Literal("answer-tags"),
  open: Schema.optional(NonEmpty),
  close: Schema.optional(NonEmpty),
});

/** @internal One member of LocatorSpec. */
const Gsm8k = Schema.Struct({ kind: Schema.Literal("gsm8k") });

/** @internal One member of LocatorSpec. */
const Field = Schema.Struct({ kind: Schema.Literal("field") });

/** @internal One member of LocatorSpec. */
const Boxed = Schema.Struct({ kind: Schema.Literal("boxed") });

/** @internal One member of LocatorSpec. */
const Regex = Schema.Struct({
  kind: Schema.Literal("regex"),
  pattern: NonEmpty.pipe(
    Schema.filter(compiles, { message: () => "must be a valid JavaScript regular expression" }),
  ),
  group: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
}).pipe(
  Schema.filter(
    (r) => r.group === undefined || r.group <= groupCount(r.pattern),
    { message: () => "group is larger than the number of capturing groups in pattern" },
  ),
);

/** How to find the key in a response; decoded from configuration, tagged by `kind`. */
export const LocatorSpec: Schema.Union<
  [typeof AnswerTags, typeof Gsm8k, typeof Field, typeof Boxed, typeof Regex]
> = Schema.Union(AnswerTags, Gsm8k, Field, Boxed, Regex);
/** A key locator as plain data. */
export type LocatorSpec = typeof LocatorSpec.Type;

const DEFAULT_OPEN = "<Answer>";
const DEFAULT_CLOSE = "</Answer>";

/** Shrink a span so it excludes surrounding whitespace; undefined when nothing is left. */
const trimSpan = (text: string, start: number, end: number): CharSpan | undefined => {
  while (start < end && /\s/.test(text[start])) start++;
  while (end > start && /\s/.test(text[end - 1])) end--;
  return end > start ? { start, end } : undefined;
};

/**
 * Content of the last complete `open ... close` pair, trimmed. "Last complete" means: the last `close`, and
 * the nearest `open` before it, so a trailing unclosed `<Answer>` (a truncated generation) is ignored and a
 * stray extra `<Answer>` before the real one does not swallow it.
 */
const locateTags = (text: string, open: string, close: string): CharSpan | undefined => {
  const closeAt = text.lastIndexOf(close);
  if (closeAt < open.length) return undefined;
  const openAt = text.lastIndexOf(open, closeAt - open.length);
  if (openAt < 0) return undefined;
  return trimSpan(text, openAt + open.length, closeAt);
};

/** Text after the last line that starts with "#### " (GSM8K's final-answer line), trimmed. */
const locateGsm8k = (text: string): CharSpan | undefined => {
  const marker = "#### ";
  // Walk the lines from the end; the first one that matches is the last such line.
  for (let end = text.length;;) {
    const newline = end === 0 ? -1 : text.lastIndexOf("\n", end - 1);
    const start = newline + 1;
    if (text.startsWith(marker, start)) return trimSpan(text, start + marker.length, end);
    if (newline < 0) return undefined;
    end = newline;
  }
};

/**
 * Span of the closing brace matching the `{` at `openBrace`, or -1 when unbalanced. A backslash escapes
 * the next character, so `\{` and `\}` (literal braces in LaTeX) do not count.
 */
const matchBrace = (text: string, openBrace: number): number => {
  let depth = 0;
  for (let i = openBrace; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") {
      i++;
    } else if (c === "{") {
      depth++;
    } else if (c === "}") {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
};

/**
 * Content of the last top-level `\boxed{...}`. Boxes nested inside another box are part of that box's
 * content (`\boxed{\boxed{5}}` gives `\boxed{5}`). If the last box is unbalanced the answer is cut off, so
 * the key is not found rather than falling back to an earlier box.
 */
const locateBoxed = (text: string): CharSpan | undefined => {
  const marker = "\\boxed{";
  let found: CharSpan | undefined;
  let from = 0;
  for (;;) {
    const at = text.indexOf(marker, from);
    if (at < 0) return found;
    const openBrace = at + marker.length - 1;
    const closeBrace = matchBrace(text, openBrace);
    if (closeBrace < 0) return undefined;
    found = closeBrace > openBrace + 1 ? { start: openBrace + 1, end: closeBrace } : undefined;
    from = closeBrace + 1;
  }
};

/**
 * Last occurrence of the answer field. When the response ends with `<Answer>{answer}</Answer>` (how the
 * "reasoning" format renders it) that exact span is taken, because a short answer such as "r" would
 * otherwise be found inside the closing tag.
 */
const locateField = (text: string, answer: string | undefined): CharSpan | undefined => {
  if (answer === undefined || answer.length === 0) return undefined;
  const rendered = `${DEFAULT_OPEN}${answer}${DEFAULT_CLOSE}`;
  if (text.endsWith(rendered)) {
    const start = text.length - DEFAULT_CLOSE.length - answer.length;
    return { start, end: start + answer.length };
  }
  const at = text.lastIndexOf(answer);
  return at < 0 ? undefined : { start: at, end: at + answer.length };
};

/** Last match whose selected group took part and is non-empty. */
const locateRegex = (text: string, pattern: string, group: number | undefined): CharSpan | undefined => {
  const re = new RegExp(pattern, REGEX_FLAGS);
  const g = group ?? (groupCount(pattern) > 0 ? 1 : 0);
  let found: CharSpan | undefined;
  for (const m of text.matchAll(re)) {
    const span = m.indices?.[g];
    if (span !== undefined && span[1] > span[0]) found = { start: span[0], end: span[1] };
  }
  return found;
};

/**
 * Character span of the key in `response`, or undefined when the locator finds none.
 * `answerField` is the example's separate answer (only the "field" locator uses it).
 */
export const locateKey = (
  response: string,
  spec: LocatorSpec,
  answerField?: string,
): CharSpan | undefined => {
  switch (spec.kind) {
    case "answer-tags":
      return locateTags(response, spec.open ?? DEFAULT_OPEN, spec.close ?? DEFAULT_CLOSE);
    case "gsm8k":
      return locateGsm8k(response);
    case "field":
      return locateField(response, answerField);
    case "boxed":
      return locateBoxed(response);
    case "regex":
      return locateRegex(response, spec.pattern, spec.group);
  }
};

/**
 * Where the answer part of a response begins: the end of the thinking part. SFTKey's stage two trains on
 * every token from here to the end of the response (arXiv 2512.21017: the loss runs from the token after
 * `</Thinking>` to the last one, i.e. `<Answer>...</Answer>` and EOS). In the tag format that is right
 * after the last `</Thinking>` before the key (or the answer's open tag when there is none); for GSM8K the
 * start of the `#### ` line; for the other locators the key itself.
 */
export const answerPartStart = (response: string, spec: LocatorSpec, key: CharSpan): number => {
  switch (spec.kind) {
    case "answer-tags": {
      const open = spec.open ?? DEFAULT_OPEN;
      const openAt = response.lastIndexOf(open, key.start - open.length);
      const thinkingEnd = response.lastIndexOf(THINKING_CLOSE, key.start - THINKING_CLOSE.length);
      if (thinkingEnd >= 0 && thinkingEnd + THINKING_CLOSE.length <= (openAt < 0 ? key.start : openAt)) {
        return thinkingEnd + THINKING_CLOSE.length;
      }
      return openAt >= 0 ? openAt : key.start;
    }
    case "gsm8k": {
      const lineStart = response.lastIndexOf("\n", key.start - 1) + 1;
      return response.startsWith("#### ", lineStart) ? lineStart : key.start;
    }
    default:
      return key.start;
  }
};

/** The tag that closes the thinking part in the SFTKey format. */
const THINKING_CLOSE = "</Thinking>";

/**
 * The key string a model generated, or undefined. A generation has no separate answer field, so the
 * "field" locator falls back to the answer tags that the "reasoning" format renders the answer in.
 */
export const extractAnswer = (generatedText: string, spec: LocatorSpec): string | undefined => {
  const effective: LocatorSpec = spec.kind === "field" ? { kind: "answer-tags" } : spec;
  const span = locateKey(generatedText, effective);
  return span === undefined ? undefined : generatedText.slice(span.start, span.end);
};

/**
 * Canonical decimal string of a plain number ("+003.50" -> "3.5", "-0.0" -> "0"), done on the digits
 * rather than through floating point so that long integers compare exactly.
 */
const canonicalNumber = (s: string): string | undefined => {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (m === null || (m[2] === "" && (m[3] ?? "") === "")) return undefined;
  const intPart = m[2].replace(/^0+/, "") || "0";
  const fracPart = (m[3] ?? "").replace(/0+$/, "");
  const body = fracPart === "" ? intPart : `${intPart}.${fracPart}`;
  return m[1] === "-" && body !== "0" ? `-${body}` : body;
};

/**
 * Normal form for exact-match scoring: trimmed, without surrounding `$` (LaTeX math or a dollar sign) or a
 * trailing period, and numbers in canonical form ("1,000" -> "1000", "3.50" -> "3.5", "-0" -> "0").
 * Non-numeric answers are only trimmed and stripped, so "x+1" and "x + 1" stay different.
 */
export const normaliseAnswer = (s: string): string => {
  let t = s.trim();
  t = t.replace(/^\$+/, "").replace(/\$+$/, "").trim();
  t = t.replace(/\.$/, "").trim();
  const withoutSeparators = /^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$/.test(t) ? t.replaceAll(",", "") : t;
  return canonicalNumber(withoutSeparators) ?? t;
};
