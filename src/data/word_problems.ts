/**
 * The fine-tuning target tasks' word problems: multi-step problems in four mixed families (comparisons,
 * shopping with change, savings, a garden) and a running tally, each with a worked solution of one sentence
 * per operation ("Mei has 14+5=19 stickers."), and the rows of the SFTKey tag format and GSM8K format made
 * from them. `tools/make_word_problems.ts` writes the fixtures (fixtures/word-tags, fixtures/word-gsm8k) from
 * here; the pretraining corpus (src/data/corpus.ts) draws problems of the same families and writes their
 * solutions as prose, never in these formats, and never with a fixture's question.
 *
 * Why these problems: the SFTKey paper's premise is that the key (the answer) is a small share of the
 * response tokens while the chain of thought is long. Each problem takes several operations, each written as
 * a sentence with its arithmetic, and the answer is one number, so the key is a few percent of the response.
 */
import { mulberry32 } from "../util/rng.ts";

/** The random draws a problem family makes (the corpus passes its own generator's draws). */
export interface ProblemDraw {
  int(lo: number, hi: number): number;
  pick<T>(xs: ReadonlyArray<T>): T;
  /** k distinct elements of xs. */
  distinct<T>(xs: ReadonlyArray<T>, k: number): T[];
}

class Draw implements ProblemDraw {
  constructor(private readonly next: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: ReadonlyArray<T>): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  /** k distinct elements of xs. */
  distinct<T>(xs: ReadonlyArray<T>, k: number): T[] {
    const pool = [...xs];
    const out: T[] = [];
    for (let i = 0; i < k; i++) out.push(pool.splice(Math.floor(this.next() * pool.length), 1)[0]);
    return out;
  }
}

const PEOPLE = [
  "Ada",
  "Bilal",
  "Carmen",
  "Dev",
  "Elif",
  "Farah",
  "Gus",
  "Hana",
  "Idris",
  "Juno",
  "Kai",
  "Lila",
  "Mateo",
  "Nia",
  "Oskar",
  "Pia",
  "Quinn",
  "Rufus",
  "Selma",
  "Theo",
  "Uma",
  "Vera",
  "Wes",
  "Xiao",
  "Yara",
  "Zeno",
];
/** Countable things: singular, plural. */
const THINGS: ReadonlyArray<readonly [string, string]> = [
  ["seashell", "seashells"],
  ["comic", "comics"],
  ["crayon", "crayons"],
  ["button", "buttons"],
  ["pebble", "pebbles"],
  ["postcard", "postcards"],
  ["acorn", "acorns"],
  ["badge", "badges"],
  ["ribbon", "ribbons"],
  ["puzzle", "puzzles"],
  ["kite", "kites"],
  ["lemon", "lemons"],
  ["muffin", "muffins"],
  ["carrot", "carrots"],
  ["magnet", "magnets"],
  ["feather", "feathers"],
];
const GOODS: ReadonlyArray<readonly [string, string]> = [
  ["notepad", "notepads"],
  ["juice box", "juice boxes"],
  ["sandwich", "sandwiches"],
  ["pen", "pens"],
  ["bracelet", "bracelets"],
  ["bag of nuts", "bags of nuts"],
  ["poster", "posters"],
  ["mug", "mugs"],
];
const PLANTS: ReadonlyArray<readonly [string, string]> = [
  ["tomato plant", "tomato plants"],
  ["rose bush", "rose bushes"],
  ["sunflower", "sunflowers"],
  ["pepper plant", "pepper plants"],
  ["tulip", "tulips"],
];

export interface WorkedProblem {
  readonly question: string;
  /** One sentence per operation, with the arithmetic written as `a op b = c` (`{calc}` marks where). */
  readonly steps: ReadonlyArray<
    {
      readonly before: string;
      readonly a: number;
      readonly op: string;
      readonly b: number;
      readonly c: number;
      readonly after: string;
    }
  >;
  readonly answer: number;
}

type StepT = WorkedProblem["steps"][number];
const step = (before: string, a: number, op: "+" | "-" | "*", b: number, after: string): StepT => ({
  before,
  a,
  op,
  b,
  c: op === "+" ? a + b : op === "-" ? a - b : a * b,
  after,
});

const many = (n: number, t: readonly [string, string]) => (n === 1 ? t[0] : t[1]);

export interface Difficulty {
  readonly minSteps: number;
  readonly maxSteps: number;
  readonly maxStart: number;
  /** Largest second operand of any step (a quantity added, removed, multiplied by); 0: the families' own ranges. */
  readonly maxOperand: number;
}

/** `hi`, or the difficulty's operand bound when that is smaller (0 leaves `hi`). */
const cap = (diff: Difficulty, hi: number): number => (diff.maxOperand ? Math.min(hi, diff.maxOperand) : hi);

/** People compare their collections: "B has 5 more than A, C has twice as many as B ...". */
const comparison = (d: ProblemDraw, diff: Difficulty): WorkedProblem => {
  const n = d.int(Math.max(2, diff.minSteps - 1), Math.min(4, diff.maxSteps - 1)); // people after the first
  const names = d.distinct(PEOPLE, n + 1);
  const thing = d.pick(THINGS);
  const first = d.int(3, diff.maxStart);
  const counts = [first];
  const sentences = [`${names[0]} has ${first} ${many(first, thing)}.`];
  const steps: StepT[] = [];
  for (let i = 1; i <= n; i++) {
    const prev = counts[i - 1];
    const r = d.int(0, 2);
    if (r === 0 && prev <= (diff.maxOperand ? diff.maxOperand : 40)) {
      const k = d.int(2, 3);
      sentences.push(
        `${names[i]} has ${k === 2 ? "twice" : "three times"} as many ${thing[1]} as ${names[i - 1]}.`,
      );
      steps.push(step(`${names[i]} has `, k, "*", prev, ` ${thing[1]}.`));
    } else if (r === 1 && prev > 6) {
      const k = d.int(1, cap(diff, prev - 1));
      sentences.push(`${names[i]} has ${k} fewer ${thing[1]} than ${names[i - 1]}.`);
      steps.push(step(`${names[i]} has `, prev, "-", k, ` ${thing[1]}.`));
    } else {
      const k = d.int(1, cap(diff, Math.max(2, Math.floor(diff.maxStart / 2))));
      sentences.push(`${names[i]} has ${k} more ${thing[1]} than ${names[i - 1]}.`);
      steps.push(step(`${names[i]} has `, prev, "+", k, ` ${thing[1]}.`));
    }
    counts.push(steps[steps.length - 1].c);
  }
  // The question: the total of the first and last, or how many more the last has than the first.
  const last = counts[n];
  if (last > first && d.int(0, 1) === 0) {
    steps.push(step(`${names[n]} has `, last, "-", first, ` more ${thing[1]} than ${names[0]}.`));
    return {
      question: `${sentences.join(" ")} How many more ${thing[1]} does ${names[n]} have than ${names[0]}?`,
      steps,
      answer: last - first,
    };
  }
  steps.push(step(`Together ${names[0]} and ${names[n]} have `, first, "+", last, ` ${thing[1]}.`));
  return {
    question: `${sentences.join(" ")} How many ${thing[1]} do ${names[0]} and ${names[n]} have together?`,
    steps,
    answer: first + last,
  };
};

/** Shopping with change: several purchases at unit prices, paid with one note. */
const shopping = (d: ProblemDraw, diff: Difficulty): WorkedProblem => {
  const who = d.pick(PEOPLE);
  const kinds = d.int(
    Math.max(1, Math.ceil((diff.minSteps - 1) / 2)),
    Math.min(2, Math.floor((diff.maxSteps - 1) / 2)),
  );
  const goods = d.distinct(GOODS, kinds);
  const lines: string[] = [];
  const steps: StepT[] = [];
  const costs: number[] = [];
  for (const g of goods) {
    const qty = d.int(2, cap(diff, 9)),
      price = d.int(2, cap(diff, Math.max(3, Math.min(15, Math.floor(diff.maxStart / 3)))));
    lines.push(`${qty} ${many(qty, g)} at ${price} dollars each`);
    steps.push(step(`The ${g[1]} cost `, qty, "*", price, " dollars."));
    costs.push(qty * price);
  }
  let total = costs[0];
  if (costs.length > 1) {
    steps.push(step("Altogether the shopping costs ", costs[0], "+", costs[1], " dollars."));
    total = costs[0] + costs[1];
  }
  const note = [20, 50, 100, 200, 500].find((v) => v > total + 1) ?? 1000;
  steps.push(step(`${who} gets `, note, "-", total, " dollars back."));
  return {
    question: `${who} buys ${
      lines.join(" and ")
    }, and pays with a ${note}-dollar note. How many dollars of change does ${who} get?`,
    steps,
    answer: note - total,
  };
};

/** Savings over weeks, then a purchase, then a gift. */
const savings = (d: ProblemDraw, diff: Difficulty): WorkedProblem => {
  const who = d.pick(PEOPLE);
  const start = d.int(5, diff.maxStart);
  const perWeek = d.int(3, cap(diff, 15)), weeks = d.int(2, cap(diff, 8));
  const steps: StepT[] = [];
  steps.push(step(`In ${weeks} weeks ${who} saves `, weeks, "*", perWeek, " dollars."));
  steps.push(step(`${who} then has `, start, "+", weeks * perWeek, " dollars."));
  let have = start + weeks * perWeek;
  const extra: string[] = [];
  const more = d.int(Math.max(0, diff.minSteps - 2), Math.max(0, Math.min(3, diff.maxSteps - 2)));
  for (let i = 0; i < more && have > 4; i++) {
    if (d.int(0, 1) === 0) {
      const spend = d.int(1, cap(diff, have - 1));
      extra.push(`${i === 0 ? "Then" : "After that"} ${who} spends ${spend} dollars on a game.`);
      steps.push(step(`After the game ${who} has `, have, "-", spend, " dollars."));
      have -= spend;
    } else {
      const gift = d.int(2, cap(diff, 30));
      extra.push(`${i === 0 ? "Then" : "After that"} ${who}'s aunt gives ${who} ${gift} dollars.`);
      steps.push(step(`With the gift ${who} has `, have, "+", gift, " dollars."));
      have += gift;
    }
  }
  return {
    question: `${who} has ${start} dollars and saves ${perWeek} dollars every week for ${weeks} weeks. ${
      extra.join(" ")
    }${extra.length ? " " : ""}How many dollars does ${who} have now?`,
    steps,
    answer: have,
  };
};

/** A garden: rows of plants, some removed, some added. */
const garden = (d: ProblemDraw, diff: Difficulty): WorkedProblem => {
  const who = d.pick(PEOPLE);
  const plant = d.pick(PLANTS);
  const rows = d.int(2, cap(diff, 9)), perRow = d.int(3, cap(diff, 12));
  const steps: StepT[] = [step(`At first there are `, rows, "*", perRow, ` ${plant[1]}.`)];
  let have = rows * perRow;
  const events: string[] = [];
  const more = d.int(Math.max(1, diff.minSteps - 1), Math.max(1, diff.maxSteps - 1));
  for (let i = 0; i < more; i++) {
    if (d.int(0, 1) === 0 && have > 3) {
      const lost = d.int(1, cap(diff, Math.min(have - 1, 20)));
      events.push(`${lost} of the ${plant[1]} dry out and are pulled up.`);
      steps.push(step(`Then there are `, have, "-", lost, ` ${plant[1]}.`));
      have -= lost;
    } else {
      const added = d.int(2, cap(diff, 25));
      events.push(`${who} plants ${added} more ${plant[1]}.`);
      steps.push(step(`Then there are `, have, "+", added, ` ${plant[1]}.`));
      have += added;
    }
  }
  return {
    question: `${who} plants ${rows} rows of ${plant[1]} with ${perRow} in each row. ${
      events.join(" ")
    } How many ${plant[1]} are in the garden now?`,
    steps,
    answer: have,
  };
};

/**
 * A running tally: one collection changed by several events in turn, each a single-digit change (or a
 * doubling while it is small). The worked solution takes the events in the order the question gives them
 * and names none of the question's people or things, so each step needs the question's next number and the
 * previous line's result, nothing looked up by name. Made to test whether the shipped base (fixtures/base/),
 * which cannot copy a name or a number from far back in its context, does better when nothing has to be
 * looked up by name: it did not (README, "Fine-tuning regime": 4-6% on validation, against 3-12% for the
 * mixed families).
 */
const tally = (d: ProblemDraw, diff: Difficulty): WorkedProblem => {
  const who = d.pick(PEOPLE);
  const thing = d.pick(THINGS);
  const bound = diff.maxOperand || 9;
  const start = d.int(2, Math.min(diff.maxStart, 20));
  const events: string[] = [];
  const steps: StepT[] = [];
  let have = start;
  const n = d.int(Math.max(2, diff.minSteps), Math.max(2, diff.maxSteps));
  for (let i = 0; i < n; i++) {
    const r = d.int(0, 4);
    if (r === 4 && have <= 30) {
      events.push(`${who} doubles the ${thing[1]}.`);
      steps.push(step("Doubled: ", have, "*", 2, "."));
      have *= 2;
    } else if (r >= 2 && have > 2) {
      const k = d.int(1, Math.min(bound, have - 1));
      events.push(`${who} gives away ${k}.`);
      steps.push(step("Gives away: ", have, "-", k, "."));
      have -= k;
    } else {
      const k = d.int(1, bound);
      events.push(`${who} finds ${k} more.`);
      steps.push(step("Finds more: ", have, "+", k, "."));
      have += k;
    }
  }
  return {
    question: `${who} has ${start} ${many(start, thing)}. ${events.join(" ")} How many ${
      thing[1]
    } does ${who} have now?`,
    steps,
    answer: have,
  };
};

/** The default families, and the one `--families tally` selects. */
export const FAMILY_SETS = { mixed: [comparison, shopping, savings, garden], tally: [tally] } as const;

/** The calculation of one step: `a+b=c` (tags) or `a+b=<<a+b=c>>c` (GSM8K's calculator annotation). */
const calc = (s: StepT, gsm8k: boolean) => {
  const e = `${s.a}${s.op}${s.b}`;
  return gsm8k ? `${e}=<<${e}=${s.c}>>${s.c}` : `${e}=${s.c}`;
};

export const reasoning = (p: WorkedProblem, gsm8k: boolean): string =>
  p.steps.map((s) => `${s.before}${calc(s, gsm8k)}${s.after}`).join("\n");

export const tagsRow = (p: WorkedProblem): { prompt: string; response: string } => ({
  prompt: p.question,
  response: `<Thinking>${reasoning(p, false)}</Thinking><Answer>${p.answer}</Answer>`,
});

export const gsm8kRow = (p: WorkedProblem): { question: string; answer: string } => ({
  question: p.question,
  answer: `${reasoning(p, true)}\n#### ${p.answer}`,
});

export interface WordProblemOptions extends Difficulty {
  readonly gsm8k: boolean;
  /** Which problem families to draw from: the four mixed ones (default) or the running tally. */
  readonly families: keyof typeof FAMILY_SETS;
  readonly train: number;
  readonly test: number;
  readonly seed: number;
}

export const DEFAULTS: Omit<WordProblemOptions, "gsm8k" | "seed"> = {
  train: 1000,
  test: 500,
  minSteps: 3,
  maxSteps: 5,
  maxStart: 40,
  maxOperand: 0,
  families: "mixed",
};

/** Train and test rows; questions are distinct across the whole set, so the splits never share one. */
export const makeWordProblems = (opts: WordProblemOptions): { train: unknown[]; test: unknown[] } => {
  const d = new Draw(mulberry32(opts.seed));
  const seen = new Set<string>();
  const problems: WorkedProblem[] = [];
  let tries = 0;
  while (problems.length < opts.train + opts.test) {
    if (++tries > 50 * (opts.train + opts.test)) throw new Error("could not draw enough distinct problems");
    const p = d.pick(FAMILY_SETS[opts.families])(d, opts);
    if (p.answer < 0 || p.steps.some((s) => s.c < 0) || seen.has(p.question)) continue;
    seen.add(p.question);
    problems.push(p);
  }
  const row = (p: WorkedProblem): unknown => (opts.gsm8k ? gsm8kRow(p) : tagsRow(p));
  return {
    train: problems.slice(0, opts.train).map(row),
    test: problems.slice(opts.train).map(row),
  };
};
