/**
 * The programmatic expander of RFTT's tree search for the synthetic arithmetic task (fixtures/arith:
 * "What is 9 - 3 + 2?", operations left to right). It needs no model: it knows the exact value of every
 * intermediate result, proposes correct steps for each allowed functional tag and, at a configurable rate,
 * an extra wrong variant of a computing step (a result off by 1 or 2), so trees contain wrong branches
 * whose siblings are right: the material of branch merges. Its `<verify>` steps are exact (they name the
 * wrong computation, if any), and `<refine>` redoes everything computed so far correctly.
 *
 * Step contents, for 9 - 3 + 2:
 *   clarify        "Compute 9 - 3 + 2 from left to right."
 *   analysis       "There are 2 operations: 9 - 3, then + 2."
 *   subquestion    "What is 9 - 3?"
 *   next_step      "9-3=6"                 (one operation)
 *   direct_answer  "9-3+2=8"               (every remaining operation at once)
 *   verify         "9-3=6 is correct." / "9-3=7 is wrong: 9-3=6."
 *   refine         "9-3=6"                 (all operations done so far, redone correctly)
 *   output         "8"
 */
import type { FunctionalTag, Segment } from "../data/functional_tokens.ts";
import type { Expander, ProposedStep } from "./rftt_search.ts";
import type { Rng } from "../util/rng.ts";

export interface ArithProblem {
  readonly operands: ReadonlyArray<number>;
  readonly ops: ReadonlyArray<"+" | "-">;
}

/** The problem of a prompt "What is a op b op c ...?", or undefined when the prompt is not one. */
export const parseArithPrompt = (prompt: string): ArithProblem | undefined => {
  const m = /^What is (\d+(?: [+-] \d+)+)\?$/.exec(prompt.trim());
  if (m === null) return undefined;
  const parts = m[1].split(" ");
  return {
    operands: parts.filter((_, i) => i % 2 === 0).map(Number),
    ops: parts.filter((_, i) => i % 2 === 1) as ("+" | "-")[],
  };
};

const apply = (a: number, op: "+" | "-", b: number) => op === "+" ? a + b : a - b;

/** The exact answer. */
export const arithAnswer = (p: ArithProblem): number =>
  p.ops.reduce((acc, op, i) => apply(acc, op, p.operands[i + 1]), p.operands[0]);

export interface ArithState {
  /** Operations done so far. */
  readonly done: number;
  /** The value the trace currently claims (wrong after an undetected mistake). */
  readonly current: number;
  /** The last computing step, when it has not been verified yet: its text and whether it was right. */
  readonly lastComputation?: { readonly text: string; readonly right: boolean; readonly fix: string };
  /** The last `<verify>` found a mistake, which `<refine>` may fix. */
  readonly flagged: boolean;
}

/** The exact value after the first `k` operations. */
const trueValue = (p: ArithProblem, k: number) =>
  p.ops.slice(0, k).reduce((acc, op, i) => apply(acc, op, p.operands[i + 1]), p.operands[0]);

/** "a op b op c = r" for operations [from, to) starting from `start`, without spaces around the signs. */
const expression = (p: ArithProblem, start: number, from: number, to: number) =>
  `${start}${p.ops.slice(from, to).map((op, i) => `${op}${p.operands[from + i + 1]}`).join("")}`;

/** A wrong result near `right`: off by 1 or 2, not negative unless the right one is. */
const wrongResult = (right: number, rng: Rng): number => {
  const deltas = [-2, -1, 1, 2].filter((d) => right + d >= Math.min(0, right));
  return right + deltas[rng.int(deltas.length)];
};

export interface ArithExpanderOptions {
  /** Probability that a computing step (next_step, direct_answer) also gets a wrong sibling. */
  readonly wrongRate: number;
}

/** The programmatic expander for one problem. */
export const arithExpander = (p: ArithProblem, options: ArithExpanderOptions): Expander<ArithState> => {
  const n = p.ops.length;
  const text = expression(p, p.operands[0], 0, n).replace(/([+-])/g, " $1 ");
  /** The step computing operations [s.done, to) from the current value, claiming `result`. */
  const computing = (
    s: ArithState,
    tag: FunctionalTag,
    to: number,
    rng: Rng,
  ): ProposedStep<ArithState>[] => {
    const exprText = expression(p, s.current, s.done, to);
    // Right given the value it starts from (which is wrong after an undetected mistake).
    let right = s.current;
    for (let k = s.done; k < to; k++) right = apply(right, p.ops[k], p.operands[k + 1]);
    const after = (result: number): ArithState => ({
      done: to,
      current: result,
      lastComputation: {
        text: `${exprText}=${result}`,
        right: result === right,
        fix: `${exprText}=${right}`,
      },
      flagged: false,
    });
    const steps: ProposedStep<ArithState>[] = [
      { tag, content: `${exprText}=${right}`, state: after(right), correct: true },
    ];
    if (rng.next() < options.wrongRate) {
      const wrong = wrongResult(right, rng);
      steps.push({
        tag,
        content: `${exprText}=${wrong}`,
        state: after(wrong),
        correct: false,
        error: `${exprText}=${wrong} is wrong: ${exprText}=${right}.`,
      });
    }
    return steps;
  };
  const expand = (
    s: ArithState,
    path: ReadonlyArray<Segment>,
    allowedTags: ReadonlyArray<FunctionalTag>,
    rng: Rng,
  ): ProposedStep<ArithState>[] => {
    const last = path[path.length - 1]?.tag;
    const remaining = s.done < n;
    const out: ProposedStep<ArithState>[] = [];
    for (const tag of allowedTags) {
      switch (tag) {
        case "clarify":
          out.push({ tag, content: `Compute ${text} from left to right.`, state: s, correct: true });
          break;
        case "analysis": {
          const parts = p.ops.map((op, i) =>
            i === 0 ? `${p.operands[0]} ${op} ${p.operands[1]}` : `${op} ${p.operands[i + 1]}`
          );
          out.push({
            tag,
            content: `There are ${n} operations: ${parts.join(", then ")}.`,
            state: s,
            correct: true,
          });
          break;
        }
        case "subquestion":
          if (remaining) {
            out.push({
              tag,
              content: `What is ${s.current} ${p.ops[s.done]} ${p.operands[s.done + 1]}?`,
              state: s,
              correct: true,
            });
          }
          break;
        case "next_step":
          if (remaining) out.push(...computing(s, tag, s.done + 1, rng));
          break;
        case "direct_answer":
          if (remaining) out.push(...computing(s, tag, n, rng));
          else {
            out.push({
              tag,
              content: `The result is ${s.current}.`,
              state: { ...s, lastComputation: undefined },
              correct: true,
            });
          }
          break;
        case "verify":
          // One check per computation: nothing to verify twice in a row or before any computation.
          if (last !== "verify" && s.lastComputation !== undefined) {
            const c = s.lastComputation;
            out.push({
              tag,
              content: c.right ? `${c.text} is correct.` : `${c.text} is wrong: ${c.fix}.`,
              state: { ...s, lastComputation: undefined, flagged: !c.right },
              correct: true,
            });
          }
          break;
        case "refine":
          if (s.flagged) {
            const value = trueValue(p, s.done);
            out.push({
              tag,
              content: `${expression(p, p.operands[0], 0, s.done)}=${value}`,
              state: {
                done: s.done,
                current: value,
                flagged: false,
              },
              correct: true,
            });
          }
          break;
        case "output":
          if (!remaining) {
            out.push({ tag, content: `${s.current}`, state: s, correct: s.current === arithAnswer(p) });
          }
          break;
      }
    }
    return out;
  };
  return {
    root: { done: 0, current: p.operands[0], flagged: false },
    expand,
    value: (s, path) => path[path.length - 1]?.content.trim() === `${arithAnswer(p)}` && s.done === n ? 1 : 0,
  };
};

/**
 * The exact process score of each step of a trace for the arithmetic task (the step checker of the
 * process-reward option): 1 for a computing or refining step whose stated result is right given the value
 * it starts from, 0 when it is wrong, and for `<output>` whether the answer is correct; other steps get 1.
 */
export const arithStepScores = (p: ArithProblem, segments: ReadonlyArray<Segment>): number[] =>
  segments.map((s) => {
    if (s.tag === "output") return s.content.trim() === `${arithAnswer(p)}` ? 1 : 0;
    if (s.tag !== "next_step" && s.tag !== "direct_answer" && s.tag !== "refine") return 1;
    const m = /^(\d+(?:[+-]\d+)*)=(\d+)$/.exec(s.content.trim());
    if (m === null) {
      return s.tag === "direct_answer" && /^The result is \d+\.$/.test(s.content.trim()) ? 1 : 0;
    }
    const terms = m[1].match(/[+-]?\d+/g)!.map(Number);
    return terms.reduce((a, b) => a + b, 0) === Number(m[2]) ? 1 : 0;
  });
