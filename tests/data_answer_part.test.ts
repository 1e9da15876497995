/**
 * SFTKey's stage-two span: the answer part runs from the end of the thinking part to the end of the
 * sequence (arXiv 2512.21017: the loss starts at the token after `</Thinking>`).
 */
import { assertEquals } from "./assert.ts";
import { Effect } from "effect";
import { answerPartStart, locateKey } from "../src/data/locate.ts";
import { buildMask } from "../src/data/masks.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";

const tokenizer = await Effect.runPromise(
  loadTokenizer(new URL("../fixtures/arith/tokenizer.json", import.meta.url).pathname),
);

Deno.test("answerPartStart: tags start right after </Thinking>; gsm8k at the #### line; boxed at the key", () => {
  const tags = "<Thinking>1+2=3</Thinking><Answer>3</Answer>";
  const key = locateKey(tags, { kind: "answer-tags" })!;
  assertEquals(tags.slice(answerPartStart(tags, { kind: "answer-tags" }, key)), "<Answer>3</Answer>");
  const noThinking = "so <Answer>3</Answer>";
  const k2 = locateKey(noThinking, { kind: "answer-tags" })!;
  assertEquals(
    noThinking.slice(answerPartStart(noThinking, { kind: "answer-tags" }, k2)),
    "<Answer>3</Answer>",
  );
  const gsm = "1+2=3\n#### 3";
  const k3 = locateKey(gsm, { kind: "gsm8k" })!;
  assertEquals(gsm.slice(answerPartStart(gsm, { kind: "gsm8k" }, k3)), "#### 3");
  const boxed = "so \\boxed{3}.";
  const k4 = locateKey(boxed, { kind: "boxed" })!;
  assertEquals(answerPartStart(boxed, { kind: "boxed" }, k4), k4.start);
});

Deno.test("answer mask: exactly the tokens after </Thinking>, EOS included; key mask inside it", () => {
  const ex = {
    source: "t:1",
    prompt: "What is 1 + 2?",
    response: "<Thinking>1+2=3</Thinking><Answer>3</Answer>",
  };
  const key = locateKey(ex.response, { kind: "answer-tags" })!;
  const t = tokeniseExample(tokenizer, ex, key, {
    template: "{prompt}\n",
    maxLength: 128,
    answerStart: answerPartStart(ex.response, { kind: "answer-tags" }, key),
  });
  const answer = buildMask({ kind: "answer" }, t);
  const trained = t.ids.filter((_, i) => answer[i] > 0);
  assertEquals(tokenizer.decode(trained), "<Answer>3</Answer><|endoftext|>");
  assertEquals(answer[t.ids.length - 1], 1); // EOS
  const keyMask = buildMask({ kind: "key" }, t);
  assertEquals(tokenizer.decode(t.ids.filter((_, i) => keyMask[i] > 0)), "3");
  keyMask.forEach((w, i) => w > 0 && assertEquals(answer[i], 1));
  // Nothing before the answer part is trained.
  assertEquals(
    tokenizer.decode(t.ids.slice(0, t.answer!.start)),
    "What is 1 + 2?\n<Thinking>1+2=3</Thinking>",
  );
});
