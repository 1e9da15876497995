/**
 * Generates the synthetic two-step arithmetic data set used by the tests and the tiny end-to-end runs.
 *
 *   npx -y deno@2.9.6 run --allow-write=fixtures tools/make_arith.ts
 *       writes fixtures/arith/{train,test}.jsonl ("tags" format, 2000 + 200 rows)
 *   npx -y deno@2.9.6 run --allow-write=fixtures tools/make_arith.ts --gsm8k
 *       writes fixtures/gsm8k-mini/{train,test}.jsonl ("gsm8k" format, 1000 + 100 rows)
 *
 * Options: --out DIR, --train N, --test N, --seed N. Output is a pure function of the options.
 *
 * The task is kept small enough for a 2-layer transformer to learn in a few hundred steps: three
 * single-digit operands, two operations from {+, -}, and every intermediate and final result in 0..27
 * (a subtraction is only drawn when it does not go negative). The reasoning writes every number without a
 * leading space ("7+5=12\n12-3=9") so that, under a GPT-2 style pre-tokenizer, a number is the same token
 * wherever it appears in the response, the answer included. Train and test problems are disjoint.
 */

import { mulberry32 } from "../src/util/rng.ts";

interface Problem {
  readonly a: number;
  readonly op1: "+" | "-";
  readonly b: number;
  readonly op2: "+" | "-";
  readonly c: number;
}

const apply = (x: number, op: "+" | "-", y: number) => (op === "+" ? x + y : x - y);

/** Every problem whose intermediate and final results are non-negative, in a fixed order. */
const allProblems = (): Problem[] => {
  const out: Problem[] = [];
  const ops = ["+", "-"] as const;
  for (let a = 0; a <= 9; a++) {
    for (const op1 of ops) {
      for (let b = 0; b <= 9; b++) {
        const r1 = apply(a, op1, b);
        if (r1 < 0) continue;
        for (const op2 of ops) {
          for (let c = 0; c <= 9; c++) {
            if (apply(r1, op2, c) >= 0) out.push({ a, op1, b, op2, c });
          }
        }
      }
    }
  }
  return out;
};

const shuffle = <T>(xs: T[], rand: () => number): T[] => {
  const ys = [...xs];
  for (let i = ys.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [ys[i], ys[j]] = [ys[j], ys[i]];
  }
  return ys;
};

const question = (p: Problem) => `What is ${p.a} ${p.op1} ${p.b} ${p.op2} ${p.c}?`;

const steps = (p: Problem) => {
  const r1 = apply(p.a, p.op1, p.b);
  const r2 = apply(r1, p.op2, p.c);
  return { text: `${p.a}${p.op1}${p.b}=${r1}\n${r1}${p.op2}${p.c}=${r2}`, answer: r2 };
};

const tagsRow = (p: Problem) => {
  const s = steps(p);
  return { prompt: question(p), response: `<Thinking>${s.text}</Thinking><Answer>${s.answer}</Answer>` };
};

const gsm8kRow = (p: Problem) => {
  const s = steps(p);
  return { question: question(p), answer: `${s.text}\n#### ${s.answer}` };
};

const parseArgs = (args: string[]) => {
  const gsm8k = args.includes("--gsm8k");
  const value = (name: string, fallback: number | string) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : String(fallback);
  };
  const int = (name: string, fallback: number) => {
    const v = Number(value(name, fallback));
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer`);
    return v;
  };
  return {
    gsm8k,
    out: value("--out", gsm8k ? "fixtures/gsm8k-mini" : "fixtures/arith"),
    train: int("--train", gsm8k ? 1000 : 2000),
    test: int("--test", gsm8k ? 100 : 200),
    seed: int("--seed", gsm8k ? 8 : 7),
  };
};

/** The rows of one data set: train and test drawn without replacement, so they never share a problem. */
export const makeArith = (opts: { gsm8k: boolean; train: number; test: number; seed: number }) => {
  const problems = shuffle(allProblems(), mulberry32(opts.seed));
  if (opts.train + opts.test > problems.length) {
    throw new Error(`only ${problems.length} distinct problems exist; asked for ${opts.train + opts.test}`);
  }
  const row: (p: Problem) => Record<string, string> = opts.gsm8k ? gsm8kRow : tagsRow;
  return {
    train: problems.slice(0, opts.train).map(row),
    test: problems.slice(opts.train, opts.train + opts.test).map(row),
  };
};

if (import.meta.main) {
  const opts = parseArgs(Deno.args);
  const { train, test } = makeArith(opts);
  const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
  Deno.mkdirSync(opts.out, { recursive: true });
  Deno.writeTextFileSync(`${opts.out}/train.jsonl`, jsonl(train));
  Deno.writeTextFileSync(`${opts.out}/test.jsonl`, jsonl(test));
  console.log(`wrote ${train.length} train and ${test.length} test rows to ${opts.out}`);
}
