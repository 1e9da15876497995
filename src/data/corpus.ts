/**
 * Pretraining corpora: how they are read, and the synthetic one this project pretrains its base on.
 *
 * Format. A corpus is one file or a directory of files: `.jsonl` files hold one document per line as
 * `{"text": "..."}` (other fields are ignored), a `.txt` file is one document. A directory's files are read
 * in name order; other files in it (an artifact's manifest, a report) are skipped.
 *
 * The synthetic corpus teaches the skills the fine-tuning tasks need — multi-step addition, subtraction,
 * multiplication with small and multi-digit numbers, word problems solved step by step — in many surface
 * forms: equations, number facts, chains of operations, worked column arithmetic, word problems with
 * solutions written as prose, and tables. Most documents (60%) are word problems of the fine-tuning tasks'
 * own families (src/data/word_problems.ts) at several difficulties, their worked solutions written as
 * prose, as a pretrained model has met problems like its fine-tuning task's before: a small base learns
 * to read numbers and names back from a question only from many such documents (README, "Pretraining the
 * base model"). It never uses the fine-tuning formats (no `<Thinking>` or `<Answer>` tags, no `####` answer
 * lines), so that fine-tuning still has something to teach: the format and where the answer goes, and it
 * never contains a question of the excluded set (the fine-tuning fixtures' training and test questions).
 * Every document is a pure function of (seed, index, excluded questions).
 */
import { Effect } from "effect";
import { FileUnreadable, InvalidRow } from "../errors.ts";
import { mulberry32 } from "../util/rng.ts";
import { type Difficulty, FAMILY_SETS, reasoning, type WorkedProblem } from "./word_problems.ts";

export interface CorpusDocument {
  /** file:line of a JSONL row, or the .txt file. */
  readonly source: string;
  readonly text: string;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

const isCorpusFile = (name: string) => name.endsWith(".jsonl") || name.endsWith(".txt");

/** The documents of one .jsonl or .txt file; a row that is not `{"text": string}` fails with InvalidRow. */
const readCorpusFile = (path: string): Effect.Effect<CorpusDocument[], FileUnreadable | InvalidRow> =>
  Effect.gen(function* () {
    const text = yield* Effect.tryPromise({
      try: () => Deno.readTextFile(path),
      catch: (e) => new FileUnreadable({ path, reason: message(e) }),
    });
    if (path.endsWith(".txt")) return text.length > 0 ? [{ source: path, text }] : [];
    const docs: CorpusDocument[] = [];
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (lines[i].trim() === "") continue;
      let row: unknown;
      try {
        row = JSON.parse(lines[i]);
      } catch (e) {
        return yield* new InvalidRow({ file: path, line: i + 1, reason: `not valid JSON (${message(e)})` });
      }
      const value = typeof row === "object" && row !== null && !Array.isArray(row)
        ? (row as Record<string, unknown>).text
        : undefined;
      if (typeof value !== "string") {
        return yield* new InvalidRow({
          file: path,
          line: i + 1,
          field: "text",
          reason: value === undefined ? 'a corpus row needs a "text" string' : '"text" must be a string',
        });
      }
      docs.push({ source: `${path}:${i + 1}`, text: value });
    }
    return docs;
  });

/** Every document of a corpus file or directory (see the top of the file), in a fixed order. */
export const readCorpus = (path: string): Effect.Effect<CorpusDocument[], FileUnreadable | InvalidRow> =>
  Effect.gen(function* () {
    const info = yield* Effect.tryPromise({
      try: () => Deno.stat(path),
      catch: (e) => new FileUnreadable({ path, reason: message(e) }),
    });
    if (!info.isDirectory) {
      if (!isCorpusFile(path)) {
        return yield* new FileUnreadable({ path, reason: "a corpus file must end in .jsonl or .txt" });
      }
      return yield* readCorpusFile(path);
    }
    const names = yield* Effect.tryPromise({
      try: async () => {
        const out: string[] = [];
        for await (const e of Deno.readDir(path)) if (e.isFile && isCorpusFile(e.name)) out.push(e.name);
        return out.sort();
      },
      catch: (e) => new FileUnreadable({ path, reason: message(e) }),
    });
    if (names.length === 0) {
      return yield* new FileUnreadable({ path, reason: "the directory holds no .jsonl or .txt file" });
    }
    const docs: CorpusDocument[] = [];
    for (const name of names) docs.push(...(yield* readCorpusFile(`${path}/${name}`)));
    return docs;
  });

/** The fine-tuning formats' markers, which the synthetic corpus must never contain. */
export const FORMAT_MARKERS = ["<Thinking>", "</Thinking>", "<Answer>", "</Answer>", "####"] as const;

// ---------------------------------------------------------------------------------------------------------
// The generator.

class Draw {
  constructor(readonly next: () => number) {}
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: ReadonlyArray<T>): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** k distinct elements of xs. */
  distinct<T>(xs: ReadonlyArray<T>, k: number): T[] {
    const pool = [...xs];
    const out: T[] = [];
    for (let i = 0; i < k; i++) out.push(pool.splice(Math.floor(this.next() * pool.length), 1)[0]);
    return out;
  }
  /** A number of a size class: small (0-20), medium (up to 100) or large (up to 999). */
  num(size: Size): number {
    return size === "small" ? this.int(0, 20) : size === "medium" ? this.int(2, 100) : this.int(10, 999);
  }
}

type Size = "small" | "medium" | "large";
const SIZES: ReadonlyArray<Size> = ["small", "small", "medium", "medium", "large"];

const NAMES = [
  "Maria",
  "James",
  "Aisha",
  "Tom",
  "Lena",
  "Omar",
  "Sofia",
  "Ben",
  "Priya",
  "Jack",
  "Mei",
  "Lucas",
  "Nora",
  "Ravi",
  "Emma",
  "Diego",
  "Hannah",
  "Kofi",
  "Yuki",
  "Sam",
  "Zara",
  "Leo",
  "Ines",
  "Noah",
  "Grace",
  "Ali",
  "Chloe",
  "Ivan",
  "Rosa",
  "Felix",
  "Amara",
  "Hugo",
  "Julia",
  "Marco",
  "Tara",
  "Eli",
];
/** Countable things: singular, plural. */
const ITEMS: ReadonlyArray<readonly [string, string]> = [
  ["apple", "apples"],
  ["pencil", "pencils"],
  ["book", "books"],
  ["marble", "marbles"],
  ["sticker", "stickers"],
  ["cookie", "cookies"],
  ["card", "cards"],
  ["shell", "shells"],
  ["coin", "coins"],
  ["egg", "eggs"],
  ["orange", "oranges"],
  ["toy car", "toy cars"],
  ["balloon", "balloons"],
  ["flower", "flowers"],
  ["cupcake", "cupcakes"],
  ["bead", "beads"],
  ["stamp", "stamps"],
  ["candle", "candles"],
  ["ticket", "tickets"],
  ["plant", "plants"],
  ["notebook", "notebooks"],
  ["ball", "balls"],
  ["shirt", "shirts"],
  ["bottle", "bottles"],
];
const CONTAINERS = ["box", "bag", "pack", "basket", "jar", "crate", "tray", "bundle"];
const PLACES = [
  "the market",
  "the school fair",
  "the shop",
  "the bakery",
  "the library sale",
  "the farm stand",
];
const TIME_UNITS: ReadonlyArray<readonly [string, string]> = [["day", "days"], ["week", "weeks"], [
  "hour",
  "hours",
]];

type Op = "+" | "-" | "*";
const apply = (a: number, op: Op, b: number) => (op === "+" ? a + b : op === "-" ? a - b : a * b);

/** The ways an operation is written in symbols. */
const symbolOf = (op: Op, d: Draw) => (op === "*" ? d.pick(["*", "x", "×"]) : op);
const wordOf = (op: Op) => (op === "+" ? "plus" : op === "-" ? "minus" : "times");

/** An equation line in one of several surface forms. */
const equation = (a: number, op: Op, b: number, d: Draw): string => {
  const c = apply(a, op, b);
  const sym = symbolOf(op, d);
  switch (d.int(0, 6)) {
    case 0:
      return `${a}${sym}${b}=${c}`;
    case 1:
    case 2:
      return `${a} ${sym} ${b} = ${c}`;
    case 3:
      return `${a} ${wordOf(op)} ${b} equals ${c}.`;
    case 4:
      return `${a} ${wordOf(op)} ${b} is ${c}.`;
    case 5:
      return op === "+"
        ? `The sum of ${a} and ${b} is ${c}.`
        : op === "-"
        ? `The difference between ${a} and ${b} is ${c}.`
        : `The product of ${a} and ${b} is ${c}.`;
    default:
      return op === "+"
        ? `If you add ${b} to ${a}, you get ${c}.`
        : op === "-"
        ? `If you take ${b} away from ${a}, you get ${c}.`
        : `${a} groups of ${b} make ${c}.`;
  }
};

/** Operands of a random operation on `a` whose result stays non-negative and not too large. */
const nextStep = (a: number, size: Size, d: Draw): [Op, number] => {
  const r = d.next();
  if (r < 0.2 && a <= 200) return ["*", d.int(2, a > 20 ? 9 : 12)];
  if (r < 0.6 || a === 0) return ["+", d.num(size)];
  return ["-", d.int(0, Math.min(a, size === "small" ? 20 : size === "medium" ? 100 : 999))];
};

// Document kinds. Each returns one document of several related items.

const equationsDoc = (d: Draw): string => {
  const lines: string[] = [];
  const n = d.int(6, 14);
  const size = d.pick(SIZES);
  for (let i = 0; i < n; i++) {
    const a = d.num(size);
    const op: Op = d.pick(["+", "+", "-", "*"]);
    if (op === "*") lines.push(equation(d.int(0, size === "small" ? 12 : 99), op, d.int(0, 12), d));
    else if (op === "-") {
      const b = d.int(0, a);
      lines.push(equation(a, op, b, d));
    } else lines.push(equation(a, op, d.num(size), d));
  }
  const title = d.pick([
    "",
    "Practice facts:\n",
    "Some arithmetic:\n",
    "Equations\n",
    "Quick sums and products.\n",
  ]);
  return title + lines.join(d.pick(["\n", "\n", " "]));
};

/** A chain of operations, evaluated left to right, one step per line or in a sentence. */
const chainDoc = (d: Draw): string => {
  const parts: string[] = [];
  const n = d.int(2, 4);
  for (let k = 0; k < n; k++) {
    const size = d.pick(SIZES);
    const steps = d.int(2, size === "large" ? 4 : 6);
    let value = d.num(size);
    const ops: Array<[Op, number]> = [];
    const start = value;
    const work: string[] = [];
    for (let i = 0; i < steps; i++) {
      const [op, b] = nextStep(value, size, d);
      const sym = op === "*" ? "*" : op;
      const next = apply(value, op, b);
      work.push(d.chance(0.5) ? `${value}${sym}${b}=${next}` : `${value} ${sym} ${b} = ${next}`);
      ops.push([op, b]);
      value = next;
    }
    const expr = `${start}` + ops.map(([op, b]) => ` ${op === "*" ? "*" : op} ${b}`).join("");
    // Multiplication binds tighter than + and -: only a chain without it, or with parentheses, is written
    // as a flat expression.
    const hasMul = ops.some(([op]) => op === "*");
    const shown = hasMul
      ? ops.reduce((s, [op, b], i) => (i === 0 ? `${s} ${op} ${b}` : `(${s}) ${op} ${b}`), `${start}`)
      : expr;
    switch (d.int(0, 4)) {
      case 0:
        parts.push(`What is ${shown}?\n${work.join("\n")}\nThe result is ${value}.`);
        break;
      case 1:
        parts.push(`Compute ${shown}. Step by step: ${work.join(", then ")}. So the value is ${value}.`);
        break;
      case 2:
        parts.push(`${shown} = ${value}, because ${work.join(" and ")}.`);
        break;
      case 3:
        parts.push(
          `Evaluate ${shown}.\nWe go from left to right.\n${work.join("\n")}\nAnswer: ${value}`,
        );
        break;
      default:
        parts.push(`Start with ${start}, ${
          ops.map(([op, b], i) => {
            const verb = op === "+" ? `add ${b}` : op === "-" ? `subtract ${b}` : `multiply by ${b}`;
            return `${i === 0 ? "first" : i === ops.length - 1 ? "finally" : "then"} ${verb}`;
          }).join(", ")
        }. ${work.join(". ")}. The final number is ${value}.`);
    }
  }
  return parts.join("\n\n");
};

const numberFactsDoc = (d: Draw): string => {
  const facts: string[] = [];
  const n = d.int(8, 16);
  for (let i = 0; i < n; i++) {
    const a = d.int(0, d.pick([20, 100, 1000]));
    switch (d.int(0, 9)) {
      case 0:
        facts.push(`${a} is ${a % 2 === 0 ? "an even" : "an odd"} number.`);
        break;
      case 1:
        facts.push(`The number after ${a} is ${a + 1}. The number before ${a + 1} is ${a}.`);
        break;
      case 2:
        facts.push(`Double ${a} is ${2 * a}.`);
        break;
      case 3:
        facts.push(`Half of ${2 * a} is ${a}.`);
        break;
      case 4: {
        const b = d.int(0, 100);
        facts.push(
          a === b
            ? `${a} is equal to ${b}.`
            : `${Math.max(a, b)} is greater than ${Math.min(a, b)} by ${Math.abs(a - b)}.`,
        );
        break;
      }
      case 5:
        if (a >= 10) {
          const tens = Math.floor((a % 100) / 10), ones = a % 10, hundreds = Math.floor(a / 100);
          facts.push(
            hundreds > 0
              ? `${a} has ${hundreds} hundreds, ${tens} tens and ${ones} ones: ${a} = ${hundreds * 100} + ${
                tens * 10
              } + ${ones}.`
              : `${a} is ${tens} tens and ${ones} ones, so ${a} = ${tens * 10} + ${ones}.`,
          );
        } else facts.push(`${a} is a one-digit number.`);
        break;
      case 6: {
        const x = d.int(1, 12), y = d.int(1, 12);
        facts.push(`${x} times ${y} is ${x * y}, and ${y} times ${x} is also ${x * y}.`);
        break;
      }
      case 7: {
        const b = d.int(1, 12), q = d.int(0, 12);
        facts.push(`${b * q} divided by ${b} is ${q}, because ${b} * ${q} = ${b * q}.`);
        break;
      }
      case 8: {
        const b = d.int(0, 50);
        facts.push(`${a + b} - ${b} = ${a} and ${a} + ${b} = ${a + b}.`);
        break;
      }
      default:
        facts.push(`Ten more than ${a} is ${a + 10}. Ten less than ${a + 10} is ${a}.`);
    }
  }
  return facts.join(d.pick([" ", "\n"]));
};

/** Column addition / subtraction with carries and borrows, and multiplication by parts, in prose. */
const workedDoc = (d: Draw): string => {
  const parts: string[] = [];
  const n = d.int(2, 4);
  for (let k = 0; k < n; k++) {
    const kind = d.int(0, 2);
    if (kind === 0) {
      const a = d.int(10, 9999), b = d.int(10, 9999);
      const steps: string[] = [];
      let carry = 0;
      const da = String(a).split("").reverse().map(Number), db = String(b).split("").reverse().map(Number);
      const places = ["ones", "tens", "hundreds", "thousands", "ten thousands"];
      for (let i = 0; i < Math.max(da.length, db.length); i++) {
        const x = da[i] ?? 0, y = db[i] ?? 0, s = x + y + carry;
        const terms = carry ? `${x} + ${y} + ${carry}` : `${x} + ${y}`;
        steps.push(
          `${places[i]}: ${terms} = ${s}, write ${s % 10}${s >= 10 ? " and carry 1" : ""}`,
        );
        carry = s >= 10 ? 1 : 0;
      }
      if (carry) steps.push(`the last carry gives 1 more digit`);
      parts.push(`Add ${a} and ${b} in columns. ${steps.join("; ")}. So ${a} + ${b} = ${a + b}.`);
    } else if (kind === 1) {
      const a = d.int(20, 9999), b = d.int(1, a);
      const onesB = b % 10, tensB = b - onesB;
      parts.push(
        d.chance(0.5)
          ? `To subtract ${b} from ${a}, first take away ${tensB}: ${a} - ${tensB} = ${
            a - tensB
          }. Then take away ${onesB}: ${a - tensB} - ${onesB} = ${a - b}. So ${a} - ${b} = ${a - b}.`
          : `${a} - ${b}: the difference is ${a - b}. Check by adding: ${a - b} + ${b} = ${a}.`,
      );
    } else {
      const a = d.int(11, 99), b = d.int(11, 99);
      const tens = b - (b % 10), ones = b % 10;
      parts.push(
        `To multiply ${a} by ${b}, split ${b} into ${tens} and ${ones}: ${a} * ${tens} = ${
          a * tens
        } and ${a} * ${ones} = ${a * ones}. Then ${a * tens} + ${a * ones} = ${a * b}. So ${a} x ${b} = ${
          a * b
        }.`,
      );
    }
  }
  return parts.join("\n\n");
};

interface Problem {
  readonly question: string;
  /** Solution sentences, each with its arithmetic written out. */
  readonly steps: string[];
  readonly answer: number;
  readonly unit: string;
}

const plural = (n: number, item: readonly [string, string]) => (n === 1 ? item[0] : item[1]);

/** A word problem about one person's things, 2-6 steps of +, -, *. */
const collectionProblem = (d: Draw): Problem => {
  const name = d.pick(NAMES);
  const item = d.pick(ITEMS);
  const big = d.chance(0.3);
  let have = big ? d.int(20, 300) : d.int(2, 30);
  const sentences = [`${name} has ${have} ${plural(have, item)}.`];
  const steps: string[] = [];
  const n = d.int(2, 6);
  for (let i = 0; i < n; i++) {
    const r = d.next();
    if (r < 0.25) {
      const packs = d.int(2, 9), per = d.int(2, big ? 25 : 12), c = d.pick(CONTAINERS);
      const got = packs * per;
      sentences.push(
        `${d.pick(["Then", "Next,", "After that,", "Later,"])} ${name} buys ${packs} ${c}${
          c.endsWith("x") ? "es" : "s"
        } with ${per} ${item[1]} in each.`,
      );
      steps.push(
        `The ${c}${c.endsWith("x") ? "es" : "s"} hold ${packs} * ${per} = ${got} ${
          item[1]
        }, so ${name} now has ${have} + ${got} = ${have + got}.`,
      );
      have += got;
    } else if (r < 0.55) {
      const add = d.int(1, big ? 80 : 15);
      const who = d.pick(NAMES.filter((x) => x !== name));
      sentences.push(`${who} gives ${name} ${add} more ${plural(add, item)}.`);
      steps.push(`After getting ${add} more, ${name} has ${have} + ${add} = ${have + add} ${item[1]}.`);
      have += add;
    } else if (r < 0.85 && have > 1) {
      const lose = d.int(1, have - 1);
      const verb = d.pick(["gives away", "uses", "sells", "loses", "shares"]);
      sentences.push(`${name} ${verb} ${lose} ${plural(lose, item)}.`);
      steps.push(`${name} ${verb} ${lose}, which leaves ${have} - ${lose} = ${have - lose} ${item[1]}.`);
      have -= lose;
    } else if (have <= 200) {
      const k = d.int(2, 4);
      sentences.push(
        `${name} ${k === 2 ? "doubles" : k === 3 ? "triples" : "makes four times"} the number of ${item[1]}.`,
      );
      steps.push(`Multiplying by ${k}: ${have} * ${k} = ${have * k} ${item[1]}.`);
      have *= k;
    } else {
      const add = d.int(1, 30);
      sentences.push(`${name} finds ${add} more ${plural(add, item)}.`);
      steps.push(`Finding ${add} more gives ${have} + ${add} = ${have + add} ${item[1]}.`);
      have += add;
    }
  }
  sentences.push(d.pick([
    `How many ${item[1]} does ${name} have now?`,
    `How many ${item[1]} does ${name} have at the end?`,
    `How many ${item[1]} are left?`,
  ]));
  return { question: sentences.join(" "), steps, answer: have, unit: item[1] };
};

/** Shopping: several items at prices, a total, sometimes change from a bill. */
const shoppingProblem = (d: Draw): Problem => {
  const name = d.pick(NAMES);
  const place = d.pick(PLACES);
  const k = d.int(2, 4);
  const chosen = new Set<number>();
  while (chosen.size < k) chosen.add(d.int(0, ITEMS.length - 1));
  const lines = [...chosen].map((i) => ({ item: ITEMS[i], qty: d.int(1, 9), price: d.int(1, 25) }));
  const buys = lines.map((l) => `${l.qty} ${plural(l.qty, l.item)} for $${l.price} each`);
  const steps = lines.map((l) =>
    `${l.qty} ${plural(l.qty, l.item)} cost ${l.qty} * ${l.price} = ${l.qty * l.price} dollars.`
  );
  const costs = lines.map((l) => l.qty * l.price);
  let total = costs[0];
  for (let i = 1; i < costs.length; i++) {
    steps.push(`Adding up: ${total} + ${costs[i]} = ${total + costs[i]} dollars.`);
    total += costs[i];
  }
  const question = [`At ${place}, ${name} buys ${buys.slice(0, -1).join(", ")} and ${buys.at(-1)}.`];
  if (d.chance(0.5)) {
    const bill = [20, 50, 100, 200, 500].find((b) => b >= total) ?? total + 100;
    question.push(`${name} pays with $${bill}. How much change does ${name} get?`);
    steps.push(`The change is ${bill} - ${total} = ${bill - total} dollars.`);
    return { question: question.join(" "), steps, answer: bill - total, unit: "dollars" };
  }
  question.push(`How much does ${name} spend in total?`);
  return { question: question.join(" "), steps, answer: total, unit: "dollars" };
};

/** Rates over time, and sharing equally. */
const rateProblem = (d: Draw): Problem => {
  const name = d.pick(NAMES);
  const unit = d.pick(TIME_UNITS);
  const item = d.pick(ITEMS);
  if (d.chance(0.5)) {
    const per = d.int(2, 30), t1 = d.int(2, 9), t2 = d.int(2, 9);
    const extra = d.int(1, 40);
    const steps = [
      `In the first ${t1} ${unit[1]} ${name} makes ${t1} * ${per} = ${t1 * per} ${item[1]}.`,
      `In the next ${t2} ${unit[1]} ${name} makes ${t2} * ${per} = ${t2 * per} ${item[1]}.`,
      `Together that is ${t1 * per} + ${t2 * per} = ${t1 * per + t2 * per} ${item[1]}.`,
      `With the ${extra} already made, the total is ${t1 * per + t2 * per} + ${extra} = ${
        t1 * per + t2 * per + extra
      }.`,
    ];
    return {
      question: `${name} makes ${per} ${item[1]} every ${unit[0]}. ${name} already has ${extra} ${
        plural(extra, item)
      }, then works for ${t1} ${unit[1]}, rests, and works ${t2} more ${unit[1]}. How many ${
        item[1]
      } does ${name} have?`,
      steps,
      answer: t1 * per + t2 * per + extra,
      unit: item[1],
    };
  }
  const people = d.int(2, 9), each = d.int(2, 15), kept = d.int(0, 20);
  const total = people * each + kept;
  return {
    question: `${name} has ${total} ${
      item[1]
    } and keeps ${kept} of them. The rest are shared equally among ${people} friends. How many ${
      item[1]
    } does each friend get?`,
    steps: [
      `After keeping ${kept}, there are ${total} - ${kept} = ${total - kept} ${item[1]} to share.`,
      `Shared among ${people} friends, each gets ${total - kept} / ${people} = ${each} ${item[1]}.`,
    ],
    answer: each,
    unit: item[1],
  };
};

/** Comparisons between people: "B has 3 more than A, C has twice as many as B". */
const comparisonProblem = (d: Draw): Problem => {
  const [a, b, c] = [d.pick(NAMES), d.pick(NAMES), d.pick(NAMES)];
  if (a === b || b === c || a === c) return collectionProblem(d);
  const item = d.pick(ITEMS);
  const x = d.int(2, 40), more = d.int(1, 20), times = d.int(2, 4);
  const y = x + more, z = y * times;
  return {
    question: `${a} has ${x} ${item[1]}. ${b} has ${more} more ${
      item[1]
    } than ${a}. ${c} has ${times} times as many ${item[1]} as ${b}. How many ${
      item[1]
    } do the three of them have together?`,
    steps: [
      `${b} has ${x} + ${more} = ${y} ${item[1]}.`,
      `${c} has ${y} * ${times} = ${z} ${item[1]}.`,
      `Together: ${x} + ${y} = ${x + y}, and ${x + y} + ${z} = ${x + y + z} ${item[1]}.`,
    ],
    answer: x + y + z,
    unit: item[1],
  };
};

const PROBLEMS = [collectionProblem, collectionProblem, shoppingProblem, rateProblem, comparisonProblem];

/**
 * Problem `index` of a document with its solution as prose, in one of four layouts (drawn): "Question: ...
 * Solution: ...", "Problem k.", "... Let us work it out. ..." or "Q: ... A: ...". `qa` is how the last layout
 * writes the steps: on one line, or one per line.
 */
const proseLayout = (
  d: Draw,
  index: number,
  question: string,
  steps: ReadonlyArray<string>,
  close: string,
  qa: "inline" | "lines",
): string => {
  switch (d.int(0, 3)) {
    case 0:
      return `Question: ${question}\nSolution: ${steps.join(" ")} ${close}`;
    case 1:
      return `Problem ${index + 1}. ${question}\n${steps.join("\n")}\n${close}`;
    case 2:
      return `${question} Let us work it out. ${steps.join(" ")} ${close}`;
    default:
      return qa === "inline"
        ? `Q: ${question}\nA: ${steps.join(" ")} ${close}`
        : `Q: ${question}\nA: ${steps.join("\n")}\n${close}`;
  }
};

/** Word problems with worked solutions written as prose, in several layouts. */
const wordProblemDoc = (d: Draw): string => {
  const n = d.int(1, 3);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = d.pick(PROBLEMS)(d);
    const close = d.pick([
      `The answer is ${p.answer}.`,
      `So the answer is ${p.answer} ${p.unit}.`,
      `Answer: ${p.answer}`,
      `That makes ${p.answer} ${p.unit}.`,
      `Therefore the result is ${p.answer}.`,
    ]);
    out.push(proseLayout(d, i, p.question, p.steps, close, "inline"));
  }
  return out.join("\n\n");
};

/** Tables: a price list with line totals, a multiplication table, a running total. */
const tableDoc = (d: Draw): string => {
  const kind = d.int(0, 2);
  if (kind === 0) {
    const rows = d.int(2, 5);
    const lines = ["| item | quantity | price | total |", "| --- | --- | --- | --- |"];
    let sum = 0;
    for (let i = 0; i < rows; i++) {
      const item = d.pick(ITEMS), q = d.int(1, 12), p = d.int(1, 30);
      lines.push(`| ${item[1]} | ${q} | ${p} | ${q * p} |`);
      sum += q * p;
    }
    return `Order list for ${d.pick(NAMES)}.\n${lines.join("\n")}\nThe grand total is ${sum}.`;
  }
  if (kind === 1) {
    const b = d.int(2, 19);
    const upTo = d.int(5, 12);
    const lines = Array.from({ length: upTo }, (_, i) => `${i + 1} x ${b} = ${(i + 1) * b}`);
    return `The ${b} times table:\n${lines.join("\n")}`;
  }
  const name = d.pick(NAMES), unit = d.pick(TIME_UNITS), item = d.pick(ITEMS);
  const rows = d.int(3, 7);
  const lines = [`| ${unit[0]} | added | total |`, "| --- | --- | --- |"];
  let total = d.int(0, 50);
  const start = total;
  for (let i = 0; i < rows; i++) {
    const add = d.int(1, 40);
    total += add;
    lines.push(`| ${i + 1} | ${add} | ${total} |`);
  }
  return `${name} starts with ${start} ${item[1]} and adds some every ${unit[0]}.\n${
    lines.join("\n")
  }\nAfter ${rows} ${unit[1]} ${name} has ${total} ${item[1]}.`;
};

/** The fine-tuning tasks' difficulty (the fixtures'), an easier one and a longer one. */
const TASK_DIFFICULTIES: ReadonlyArray<Difficulty> = [
  { minSteps: 3, maxSteps: 5, maxStart: 40, maxOperand: 0 },
  { minSteps: 1, maxSteps: 3, maxStart: 20, maxOperand: 9 },
  { minSteps: 2, maxSteps: 6, maxStart: 60, maxOperand: 0 },
];
/** The four mixed families (the fixtures') each twice as often as the running tally. */
const TASK_FAMILIES = [...FAMILY_SETS.mixed, ...FAMILY_SETS.mixed, ...FAMILY_SETS.tally];

/** One of the fine-tuning tasks' problems whose question is not excluded, with no negative quantity. */
const taskProblem = (d: Draw, exclude: ReadonlySet<string>): WorkedProblem => {
  for (;;) {
    const p = d.pick(TASK_FAMILIES)(d, d.pick(TASK_DIFFICULTIES));
    if (p.answer >= 0 && p.steps.every((s) => s.c >= 0) && !exclude.has(p.question)) return p;
  }
};

/** The fine-tuning tasks' word problems with their worked solutions as prose, in several layouts. */
const taskProblemDoc = (d: Draw, exclude: ReadonlySet<string>): string => {
  const n = d.int(1, 3);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = taskProblem(d, exclude);
    const steps = reasoning(p, false).split("\n");
    const close = d.pick([
      `The answer is ${p.answer}.`,
      `Answer: ${p.answer}`,
      `So the answer is ${p.answer}.`,
    ]);
    out.push(proseLayout(d, i, p.question, steps, close, "lines"));
  }
  return out.join("\n\n");
};

const KINDS = {
  equations: equationsDoc,
  chain: chainDoc,
  facts: numberFactsDoc,
  worked: workedDoc,
  wordProblem: wordProblemDoc,
  table: tableDoc,
  taskProblem: taskProblemDoc,
} as const;
export type DocumentKind = keyof typeof KINDS;

/**
 * How often each kind is drawn: the tasks' word problems in 60% of the documents, the other kinds (which
 * teach the arithmetic in other surface forms) in the rest, word problems and chains most often.
 */
const MIX: ReadonlyArray<DocumentKind> = [
  ...Array.from({ length: 15 }, () => "taskProblem" as const),
  "wordProblem",
  "wordProblem",
  "wordProblem",
  "chain",
  "chain",
  "equations",
  "facts",
  "worked",
  "worked",
  "table",
];

const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();

/**
 * Document `index` of the corpus with `seed`: a pure function of both and of `exclude`, the questions no
 * task-problem document may contain.
 */
export const syntheticDocument = (
  seed: number,
  index: number,
  exclude: ReadonlySet<string> = NOTHING_EXCLUDED,
): { kind: DocumentKind; text: string } => {
  const d = new Draw(mulberry32((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0));
  const kind = d.pick(MIX);
  return { kind, text: kind === "taskProblem" ? taskProblemDoc(d, exclude) : KINDS[kind](d) };
};
