import { assert, assertEquals } from "./assert.ts";
import { Either, Schema } from "effect";
import { extractAnswer, locateKey, LocatorSpec, normaliseAnswer } from "../src/data/locate.ts";

/** The located key text, or undefined. */
const key = (response: string, spec: LocatorSpec, answerField?: string) => {
  const span = locateKey(response, spec, answerField);
  return span === undefined ? undefined : response.slice(span.start, span.end);
};

Deno.test("answer-tags: last well-formed pair, trimmed; missing or empty is not found", () => {
  const tags: LocatorSpec = { kind: "answer-tags" };
  assertEquals(key("<Thinking>7+5=12</Thinking><Answer>12</Answer>", tags), "12");
  assertEquals(key("<Answer>1</Answer> then <Answer>2</Answer>", tags), "2");
  assertEquals(key("<Answer>1</Answer> then <Answer>2", tags), "1", "unclosed trailing tag is ignored");
  assertEquals(key("<Answer>x <Answer> 3 </Answer>", tags), "3", "nearest open before the close");
  assertEquals(key("<Answer></Answer>", tags), undefined);
  assertEquals(key("<Answer>  </Answer>", tags), undefined);
  assertEquals(key("no tags at all", tags), undefined);
  assertEquals(key("</Answer><Answer>", tags), undefined);
  assertEquals(key("[[ 9 ]]", { kind: "answer-tags", open: "[[", close: "]]" }), "9");
  const span = locateKey("<Answer>42</Answer>", tags);
  assertEquals(span, { start: 8, end: 10 });
});

Deno.test("gsm8k: text after the last '#### ' line, trimmed, to the end of that line", () => {
  const g: LocatorSpec = { kind: "gsm8k" };
  assertEquals(key("She has 3+4=<<3+4=7>>7.\n#### 7", g), "7");
  assertEquals(key("a\n#### 1,000  \n", g), "1,000");
  assertEquals(key("#### 5\nmore\n#### 6\ntrailing words", g), "6");
  assertEquals(key("#### 12", g), "12", "first line");
  assertEquals(key("x #### 3", g), undefined, "must start the line");
  assertEquals(key("a\n####   \n", g), undefined, "empty answer");
  assertEquals(key("a\r\n#### 8\r\n", g), "8", "CRLF");
  assertEquals(key("", g), undefined);
  assertEquals(normaliseAnswer(key("#### 1,234,567", g)!), "1234567");
});

Deno.test("boxed: last top-level \\boxed{...} with balanced braces", () => {
  const b: LocatorSpec = { kind: "boxed" };
  assertEquals(key("so \\boxed{\\frac{1}{2}}.", b), "\\frac{1}{2}");
  assertEquals(key("\\boxed{1} and finally \\boxed{2}", b), "2");
  assertEquals(key("\\boxed{\\boxed{5}}", b), "\\boxed{5}", "nested box belongs to the outer one");
  assertEquals(key("\\boxed{1} then \\boxed{\\frac{1}{2}", b), undefined, "last box unbalanced");
  assertEquals(key("\\boxed{\\{1,2\\}}", b), "\\{1,2\\}", "escaped braces do not count");
  assertEquals(key("\\boxed{}", b), undefined);
  assertEquals(key("no box", b), undefined);
  assertEquals(key("\\boxed{a^{2}} + \\boxed{b_{1}}", b), "b_{1}");
});

Deno.test("field: last occurrence of the answer field; rendered answer tag wins", () => {
  const f: LocatorSpec = { kind: "field" };
  assertEquals(locateKey("x = 5, so 5", f, "5"), { start: 10, end: 11 });
  assertEquals(key("abc", f, "z"), undefined);
  assertEquals(key("abc", f), undefined, "no answer field");
  assertEquals(key("abc", f, ""), undefined);
  // "r" also occurs inside </Answer>; the rendered span must still be the answer.
  const response = "<Thinking>r is it</Thinking><Answer>r</Answer>";
  assertEquals(locateKey(response, f, "r"), { start: response.length - 10, end: response.length - 9 });
});

Deno.test("regex: last match, group 1 by default when there is a group", () => {
  assertEquals(key("a=1 b=2 c=3", { kind: "regex", pattern: "=(\\d)" }), "3");
  assertEquals(key("a=1 b=2 c=3", { kind: "regex", pattern: "=\\d" }), "=3");
  assertEquals(key("a=1 b=2 c=3", { kind: "regex", pattern: "(\\w)=(\\d)", group: 1 }), "c");
  assertEquals(key("a=1 b=2 c=3", { kind: "regex", pattern: "(\\w)=(\\d)", group: 2 }), "3");
  assertEquals(key("x\nANSWER: 7\ny", { kind: "regex", pattern: "^ANSWER: (.*)$" }), "7", "line anchors");
  assertEquals(key("nothing", { kind: "regex", pattern: "=(\\d)" }), undefined);
  assertEquals(key("a=1 b=", { kind: "regex", pattern: "=(\\d*)" }), "1", "empty captures are skipped");
});

Deno.test("LocatorSpec schema validates config", () => {
  const decode = Schema.decodeUnknownEither(LocatorSpec);
  assert(Either.isRight(decode({ kind: "answer-tags" })));
  assert(Either.isRight(decode({ kind: "regex", pattern: "(a)(b)", group: 2 })));
  assert(Either.isLeft(decode({ kind: "regex", pattern: "(a)", group: 2 })), "group out of range");
  assert(Either.isLeft(decode({ kind: "regex", pattern: "(" })), "pattern does not compile");
  assert(Either.isLeft(decode({ kind: "answer-tags", open: "" })));
  assert(Either.isLeft(decode({ kind: "nope" })));
});

Deno.test("extractAnswer: field falls back to answer tags", () => {
  assertEquals(extractAnswer("<Thinking>..</Thinking><Answer>9</Answer>", { kind: "field" }), "9");
  assertEquals(extractAnswer("blah #### 1,000", { kind: "gsm8k" }), undefined);
  assertEquals(extractAnswer("blah\n#### 1,000", { kind: "gsm8k" }), "1,000");
  assertEquals(extractAnswer("<Answer>9", { kind: "answer-tags" }), undefined);
});

Deno.test("normaliseAnswer", () => {
  const same = (a: string, b: string) => assertEquals(normaliseAnswer(a), normaliseAnswer(b), `${a} vs ${b}`);
  same("1,000", "1000");
  same("3.50", "3.5");
  same("7.0", "7");
  same("-0", "0");
  same("-0.00", "0");
  same(" $18 ", "18");
  same("$\\frac{1}{2}$", "\\frac{1}{2}");
  same("42.", "42");
  same("007", "7");
  same("+5", "5");
  same("12,345.60", "12345.6");
  same(".5", "0.5");
  assertEquals(normaliseAnswer("1,000"), "1000");
  assertEquals(normaliseAnswer("-3.50"), "-3.5");
  assertEquals(normaliseAnswer("12345678901234567890.10"), "12345678901234567890.1", "no float rounding");
  assert(normaliseAnswer("1,00") !== normaliseAnswer("100"), "not a thousands separator");
  assert(normaliseAnswer("x+1") !== normaliseAnswer("x + 1"));
  assert(normaliseAnswer("7") !== normaliseAnswer("-7"));
});
