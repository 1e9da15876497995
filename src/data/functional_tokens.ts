/**
 * RFTT's functional tokens and the grammar of a reasoning trace (Zhang et al., "Reasoning with Reinforced
 * Functional Token Tuning", arXiv 2502.13389).
 *
 * Eight tags, each with an opening and a closing token: 16 tokens that the addTokens step adds to the
 * vocabulary as special tokens, so each is one id. A response is a sequence of segments
 * `<tag>\n{content}\n</tag>\n`; the last segment is an `<output>` holding the final answer, and EOS follows
 * it (EOS is a token, not text, so it is not part of the trace text).
 *
 * Which tag may follow which is one table (`ALLOWED_AFTER`), used both by the warm-up tree search and by
 * RL rollouts, and by the validator here; `<output>` is the only terminal.
 */
import { Effect } from "effect";
import { InvalidRow } from "../errors.ts";

export const FUNCTIONAL_TAGS = [
  "clarify",
  "analysis",
  "subquestion",
  "next_step",
  "direct_answer",
  "verify",
  "refine",
  "output",
] as const;
export type FunctionalTag = typeof FUNCTIONAL_TAGS[number];

export const openTag = (t: FunctionalTag): string => `<${t}>`;
export const closeTag = (t: FunctionalTag): string => `</${t}>`;

/** The 16 tokens, in the order they are added to a vocabulary: each tag's opening then closing token. */
export const FUNCTIONAL_TOKENS: ReadonlyArray<string> = FUNCTIONAL_TAGS.flatMap((t) => [
  openTag(t),
  closeTag(t),
]);

/** Where a trace starts: the state before any segment. */
export const ROOT = "root" as const;
export type TraceState = FunctionalTag | typeof ROOT;

/**
 * The transition table: the tags allowed after the root or after a segment with the given tag. `<output>`
 * allows nothing (it is the only terminal). The order of each list is the order the search tries them in
 * when nothing else orders them.
 */
export const ALLOWED_AFTER: Readonly<Record<TraceState, ReadonlyArray<FunctionalTag>>> = {
  root: ["clarify", "analysis", "subquestion", "next_step"],
  clarify: ["analysis", "subquestion", "next_step", "direct_answer"],
  analysis: ["subquestion", "next_step", "direct_answer"],
  subquestion: ["next_step", "direct_answer"],
  next_step: ["next_step", "direct_answer", "subquestion", "verify", "output"],
  direct_answer: ["output", "verify"],
  // "Anything except clarify and analysis".
  verify: ["subquestion", "next_step", "direct_answer", "verify", "refine", "output"],
  refine: ["next_step", "direct_answer", "output", "subquestion", "verify"],
  output: [],
};

export const isFunctionalTag = (s: string): s is FunctionalTag =>
  (FUNCTIONAL_TAGS as ReadonlyArray<string>).includes(s);

/** True when `next` may follow `state`. */
export const allowed = (state: TraceState, next: FunctionalTag): boolean =>
  ALLOWED_AFTER[state].includes(next);

export interface Segment {
  readonly tag: FunctionalTag;
  /** The text between `<tag>\n` and `\n</tag>`: non-empty, without any functional token in it. */
  readonly content: string;
}

/** The text of one segment, newline included. */
export const renderSegment = (s: Segment): string => `${openTag(s.tag)}\n${s.content}\n${closeTag(s.tag)}\n`;

/** The trace text of `segments` (no validation: `validateTrace` says whether they obey the grammar). */
export const renderTrace = (segments: ReadonlyArray<Segment>): string => segments.map(renderSegment).join("");

/** Why a trace is invalid: the character offset in the text and the 0-based segment it happened in. */
export interface TraceProblem {
  readonly offset: number;
  readonly segment: number;
  readonly reason: string;
}

export type TraceParse =
  | { readonly ok: true; readonly segments: ReadonlyArray<Segment> }
  | { readonly ok: false; readonly problem: TraceProblem };

const FUNCTIONAL_TOKEN_PATTERN = new RegExp(
  FUNCTIONAL_TOKENS.map((t) => t.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|"),
);

/** The first problem with the tag sequence, or undefined when it obeys the grammar and ends in `<output>`. */
export const sequenceProblem = (
  tags: ReadonlyArray<FunctionalTag>,
): { readonly segment: number; readonly reason: string } | undefined => {
  let state: TraceState = ROOT;
  for (let i = 0; i < tags.length; i++) {
    if (!allowed(state, tags[i])) {
      return {
        segment: i,
        reason: state === "output"
          ? `<${tags[i]}> after <output>: <output> must be the last segment`
          : `<${tags[i]}> may not follow ${state === ROOT ? "the start" : `<${state}>`} (allowed: ${
            ALLOWED_AFTER[state].map((t) => `<${t}>`).join(", ")
          })`,
      };
    }
    state = tags[i];
  }
  if (state !== "output") {
    return { segment: tags.length, reason: "the trace must end with an <output> segment" };
  }
  return undefined;
};

/**
 * Parses and validates a complete trace: segments in the exact format, contents non-empty and free of
 * functional tokens, the tag sequence allowed by the table, the last segment `<output>`, nothing after it.
 */
export const parseTrace = (text: string): TraceParse => {
  const segments: Segment[] = [];
  const tagsAt: number[] = [];
  let at = 0;
  const fail = (offset: number, reason: string): TraceParse => ({
    ok: false,
    problem: { offset, segment: segments.length, reason },
  });
  while (at < text.length) {
    const m = /^<([a-z_]+)>\n/.exec(text.slice(at, at + 20));
    if (m === null || !isFunctionalTag(m[1])) {
      return fail(
        at,
        `expected an opening functional token and a newline, found ${
          JSON.stringify(text.slice(at, at + 20))
        }`,
      );
    }
    const tag = m[1];
    const start = at + m[0].length;
    const close = `\n${closeTag(tag)}\n`;
    const end = text.indexOf(close, start);
    if (end < 0) return fail(start, `<${tag}> is not closed by "\\n${closeTag(tag)}\\n"`);
    const content = text.slice(start, end);
    if (content.length === 0) return fail(start, `<${tag}> is empty`);
    const inner = FUNCTIONAL_TOKEN_PATTERN.exec(content);
    if (inner !== null) return fail(start + inner.index, `${inner[0]} inside the content of <${tag}>`);
    tagsAt.push(at);
    segments.push({ tag, content });
    at = end + close.length;
  }
  const problem = sequenceProblem(segments.map((s) => s.tag));
  if (problem !== undefined) {
    return {
      ok: false,
      problem: {
        offset: tagsAt[problem.segment] ?? text.length,
        segment: problem.segment,
        reason: problem.reason,
      },
    };
  }
  return { ok: true, segments };
};

/** `parseTrace` as an Effect failing with InvalidRow naming file:line, the field and the character offset. */
export const parseTraceAt = (
  text: string,
  where: { readonly file: string; readonly line: number; readonly field: string },
): Effect.Effect<ReadonlyArray<Segment>, InvalidRow> => {
  const r = parseTrace(text);
  return r.ok ? Effect.succeed(r.segments) : Effect.fail(
    new InvalidRow({
      file: where.file,
      line: where.line,
      field: where.field,
      reason: `invalid functional-token trace at character ${r.problem.offset} (segment ${
        r.problem.segment + 1
      }): ${r.problem.reason}`,
    }),
  );
};

/** The answer a trace gives: the content of its `<output>` segment, trimmed. */
export const traceAnswer = (segments: ReadonlyArray<Segment>): string | undefined => {
  const last = segments[segments.length - 1];
  return last?.tag === "output" ? last.content.trim() : undefined;
};
