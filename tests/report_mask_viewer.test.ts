/**
 * The mask viewer colours exactly the tokens a stage trained on (weight > 0), by weight, never a prompt
 * token, and escapes token text.
 */
import { assert, assertEquals } from "./assert.ts";
import { maskViewerHtml, weightColour } from "../src/report/mask_viewer.ts";
import { markTrained } from "../src/report/report_md.ts";
import type { MaskView } from "../src/report/collect.ts";

const tokens = [
  "What",
  " is",
  " 2+2",
  "?",
  "\n",
  "<Thinking>",
  "2+2=4",
  "</Thinking>",
  "<Answer>",
  "4",
  "</Answer>",
];
const promptLength = 5;
const stageOne = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
const stageTwo = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
const mixed = [0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 1, 1.5, 1];

const view: MaskView = {
  dataset: "arith",
  method: "demo",
  seed: 0,
  examples: [[
    { stage: "stage-one", source: "train.jsonl:1", tokens, promptLength, weights: stageOne },
    { stage: "stage-two", source: "train.jsonl:1", tokens, promptLength, weights: stageTwo },
    { stage: "mix", source: "train.jsonl:1", tokens, promptLength, weights: mixed },
  ]],
};

/** Per stage line: the tokens drawn with a background, and the colour each got. */
const colouredTokens = (html: string) =>
  [...html.matchAll(/<div class="stage">(.*?)<\/div>/g)].map(([, line]) =>
    [...line.matchAll(/<span class="t w" style="background:([^"]+)"[^>]*>(.*?)<\/span>/g)].map((m) => ({
      colour: m[1],
      text: m[2],
    }))
  );

const unescape = (s: string) =>
  s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&").replace(
    /\u21b5/g,
    "\n",
  );

Deno.test("mask viewer: exactly the weighted tokens are coloured, per stage", () => {
  const html = maskViewerHtml([view]);
  const lines = colouredTokens(html);
  assertEquals(lines.length, 3);
  [stageOne, stageTwo, mixed].forEach((weights, s) => {
    const expected = tokens.filter((_, i) => weights[i] > 0);
    assertEquals(lines[s].map((t) => unescape(t.text)), expected, `stage ${s}`);
  });
  // Prompt tokens are grey text, never coloured; zero-weight response tokens have no background.
  const prompt = [...html.matchAll(/<span class="t p">(.*?)<\/span>/g)].map((m) => unescape(m[1]));
  assertEquals(
    prompt.filter((t) => tokens.includes(t)),
    [...Array(3)].flatMap(() => tokens.slice(0, promptLength)),
  );
  // Colours follow the weight: in the mix, weight 1.5 (the largest) is darker than 1, which is darker than 0.5.
  const alpha = (c: string) => Number(c.match(/, ([0-9.]+)\)$/)![1]);
  const mix = lines[2];
  const of = (text: string) => alpha(mix.find((t) => unescape(t.text) === text)!.colour);
  assert(of("4") > of("<Answer>") && of("<Answer>") > of("2+2=4"), JSON.stringify(mix));
  // Escaped: no raw tag from a token text leaks into the markup.
  assert(!html.includes("<Answer>") && html.includes("&lt;Answer&gt;"));
});

Deno.test("mask viewer: weight 0 has no colour, positive weights get stronger with the weight", () => {
  assertEquals(weightColour(0, 1), undefined);
  assertEquals(weightColour(-1, 1), undefined);
  assert(weightColour(1e-6, 1) !== undefined);
  assertEquals(weightColour(2, 1), weightColour(1, 1));
});

Deno.test("mask viewer: the Markdown form brackets exactly the trained runs", () => {
  assertEquals(
    markTrained(tokens, stageTwo, promptLength),
    "<Thinking>2+2=4</Thinking>\u27e6<Answer>4</Answer>\u27e7",
  );
  assertEquals(markTrained(["a", "b", "c", "d"], [0, 1, 0, 1], 0), "a\u27e6b\u27e7c\u27e6d\u27e7");
});
