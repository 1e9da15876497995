/**
 * Chat templates for the "messages" format: the prompt/response cut follows add_generation_prompt, the
 * key keeps its exact characters through rendering and segment-wise tokenisation, and hostile templates
 * fail fast with ChatTemplateInvalid. Real templates (Qwen2's ChatML, Qwen3's) come from ../shared and skip
 * when it is absent; the rest uses the fixture tokenizer with templates written here.
 */
import { assert, assertEquals } from "./assert.ts";
import { Effect, Either } from "effect";
import {
  chatExample,
  type ChatMessage,
  compileChatTemplate,
  renderConversation,
  tokenizerChatTemplate,
} from "../src/data/chat.ts";
import { parseExamples } from "../src/data/formats.ts";
import { locateKey } from "../src/data/locate.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";
import { loadTokenizer, type TextTokenizer } from "../src/data/tokenizer.ts";
import { runExport } from "../src/cli/export.ts";
import { build as buildSftkey } from "../pipelines/sftkey.ts";

const fixtureTokenizer = new URL("../fixtures/arith/tokenizer.json", import.meta.url).pathname;
const shared = new URL("../../shared/data/tokenizers/", import.meta.url).pathname;
const present = await Deno.stat(`${shared}qwen2/vocab.json`).then(() => true, () => false);
if (!present) console.log(`(${shared} absent: Qwen2/Qwen3 chat template tests skipped)`);

/** A ChatML template in the style of Qwen2's, written for these tests. */
const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** The fixture tokenizer with `template` as its chat template (in a temporary directory). */
const withTemplate = async (template: string, f: (tok: TextTokenizer) => Promise<void> | void) => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-chat-" });
  try {
    await Deno.copyFile(fixtureTokenizer, `${dir}/tokenizer.json`);
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ chat_template: template }));
    await f(await Effect.runPromise(loadTokenizer(dir)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
};

const compiled = (tok: TextTokenizer) => Either.getOrThrow(tokenizerChatTemplate(tok))!;

const question: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "What is 6 * 7?" },
];

Deno.test("ChatML: the prompt ends with the generation prompt, the response is the last turn", () =>
  withTemplate(CHATML, (tok) => {
    const r = Either.getOrThrow(renderConversation(tok, compiled(tok), question, "6 * 7 = 42.\n#### 42"));
    assertEquals(
      r.prompt,
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 6 * 7?<|im_end|>\n<|im_start|>assistant\n",
    );
    assertEquals(r.response, "6 * 7 = 42.\n#### 42<|im_end|>\n");
    assertEquals(r.contentStart, 0);
  }));

Deno.test("a messages row: key located in the last assistant turn, key tokens decode to the key", () =>
  withTemplate(CHATML, async (tok) => {
    const rows = [
      {
        messages: [
          { role: "user", content: "2 + 2?" },
          { role: "assistant", content: "#### 4" },
          { role: "user", content: "And 40 + 2?" },
          { role: "assistant", content: "40 + 2 = 42\n#### 42" },
        ],
      },
    ];
    const bytes = new TextEncoder().encode(rows.map((r) => JSON.stringify(r)).join("\n"));
    const [ex] = await Effect.runPromise(parseExamples("chat.jsonl", bytes, "messages"));
    assertEquals(ex.response, "40 + 2 = 42\n#### 42");
    assertEquals(ex.prompt, "And 40 + 2?");
    assertEquals(ex.chat?.length, 3);
    const key = locateKey(ex.response, { kind: "gsm8k" })!;
    const record = { ...ex, key, answer_start: key.start, chat: ex.chat };
    const ready = Either.getOrThrow(chatExample(tok, compiled(tok), record));
    assert(ready.prompt.includes("#### 4<|im_end|>"), "earlier turns are part of the prompt");
    assertEquals(ready.response.slice(ready.key.start, ready.key.end), "42");
    const t = tokeniseExample(tok, ready, ready.key, { template: "{prompt}", maxLength: 4096 });
    assertEquals(tok.decode(t.ids.slice(0, t.promptLength)), ready.prompt);
    assertEquals(tok.decode(t.ids.slice(t.key!.start, t.key!.end)), "42");
    assertEquals(tok.decode(t.ids.slice(t.promptLength)), `${ready.response}<|endoftext|>`);
  }));

Deno.test("messages rows are validated: the last message must be a non-empty assistant turn", async () => {
  const parse = (row: unknown) =>
    Effect.runPromise(Effect.either(
      parseExamples("c.jsonl", new TextEncoder().encode(JSON.stringify(row)), "messages"),
    ));
  const bad = [
    { messages: [] },
    { messages: [{ role: "user", content: "hi" }] },
    { messages: [{ role: "assistant", content: "  " }] },
    { messages: [{ role: "assistant" }] },
    { messages: "hi" },
  ];
  for (const row of bad) {
    const r = await parse(row);
    assert(Either.isLeft(r) && r.left._tag === "InvalidRow", JSON.stringify(row));
    assert(r.left.field?.startsWith("messages"), `${JSON.stringify(row)}: field ${r.left.field}`);
  }
  const ok = await parse({ messages: [{ role: "assistant", content: "x = 3" }], answer: "3" });
  assert(Either.isRight(ok));
  assertEquals([ok.right[0].prompt, ok.right[0].answerField, ok.right[0].chat], ["", "3", []]);
});

Deno.test("templates that break the prompt/response cut fail with ChatTemplateInvalid", async () => {
  const cases: [string, string][] = [
    // The message count at the top changes when the last turn is added: the prompt is no prefix.
    ["{{ messages|length }}" + CHATML, "not a prefix"],
    // The content is rewritten (trimmed), so the key's characters cannot be mapped.
    [CHATML.replace("m.content", "(m.content|trim)"), "verbatim"],
    // The content appears twice.
    [CHATML.replace("m.content", "m.content + m.content"), "verbatim"],
  ];
  for (const [template, expected] of cases) {
    await withTemplate(template, (tok) => {
      const r = renderConversation(tok, compiled(tok), question, " 42 ", "c.jsonl:1");
      assert(Either.isLeft(r) && r.left._tag === "ChatTemplateInvalid", template);
      assert(r.left.reason.includes(expected), r.left.reason);
      assertEquals(r.left.example, "c.jsonl:1");
    });
  }
  await withTemplate(CHATML, (tok) => {
    const noTemplate = chatExample(tok, undefined, {
      source: "c.jsonl:2",
      prompt: "",
      response: "4",
      key: { start: 0, end: 1 },
      answer_start: 0,
      chat: [],
    });
    assert(Either.isLeft(noTemplate) && noTemplate.left.reason.includes("no chat_template"));
  });
});

Deno.test("hostile templates: loops, ranges, recursion and string growth stop within the limits", () => {
  // A generous time limit, so that the step and size limits are what stops these even on a loaded machine.
  const limits = { maxMillis: 30_000, maxSteps: 200_000, maxChars: 100_000 };
  const render = (template: string) => {
    const t = Either.getOrThrow(compileChatTemplate(template, "hostile", limits));
    const t0 = performance.now();
    const r = t.render({ messages: [] });
    return { r, ms: performance.now() - t0 };
  };
  const hostile: [string, string][] = [
    ["{% for i in range(1000000000) %}{% endfor %}", "interpreter steps"],
    ["{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "interpreter steps"],
    [
      "{% for i in range(1000) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}",
      "interpreter steps",
    ],
    ["{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", ""],
    [
      "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
      "characters",
    ],
    ["{{ raise_exception('no tools allowed') }}", "no tools allowed"],
  ];
  for (const [template, expected] of hostile) {
    const { r, ms } = render(template);
    assert(Either.isLeft(r) && r.left._tag === "ChatTemplateInvalid", template);
    assert(r.left.reason.includes(expected), `${template}: ${r.left.reason}`);
    assert(ms < limits.maxMillis, `${template} took ${ms} ms`);
  }
  // The wall-clock limit holds on its own, for work the step count would allow.
  const slow = Either.getOrThrow(
    compileChatTemplate("{% for i in range(100000) %}{{ range(1000)|length }}{% endfor %}", "slow", {
      maxMillis: 50,
      maxSteps: 1e12,
      maxChars: 1e9,
    }),
  ).render({});
  assert(
    Either.isLeft(slow) && slow.left.reason.includes("50 ms"),
    Either.isLeft(slow) ? slow.left.reason : "",
  );
});

Deno.test("templates cannot reach files or host objects", () => {
  for (
    const template of ["{% include 'secret.txt' %}", "{% extends 'base.html' %}", "{% import 'm' as m %}"]
  ) {
    const r = compileChatTemplate(template, "t");
    const failed = Either.isLeft(r) || Either.isLeft(r.right.render({}));
    assert(failed, `${template} should not load anything`);
  }
  // Host objects are not in scope, and members of data values do not lead to JavaScript internals.
  const probes = "{{ Deno }}|{{ globalThis }}|{{ messages.constructor }}|{{ messages.__proto__ }}|" +
    "{{ ''.constructor }}|{{ range.constructor }}|{{ strftime_now }}";
  const t = Either.getOrThrow(compileChatTemplate(probes, "t"));
  const r = t.render({ messages: [{ role: "user", content: "x" }] });
  const text = Either.isRight(r) ? r.right : r.left.reason;
  assert(!/function|native code|Object|Deno/i.test(text), text);
});

Deno.test({
  name: "Qwen2 ChatML (tokenizer_config.json in ../shared): special tokens are single ids, key exact",
  ignore: !present,
  fn: async () => {
    const tok = await Effect.runPromise(loadTokenizer(`${shared}qwen2`));
    const r = Either.getOrThrow(
      renderConversation(tok, compiled(tok), question, "The answer is \\boxed{42}."),
    );
    const key = locateKey(r.response, { kind: "boxed" })!;
    const t = tokeniseExample(tok, { source: "q", prompt: r.prompt, response: r.response }, key, {
      template: "{prompt}",
      maxLength: 4096,
    });
    // <|im_start|>system\n ... : the ChatML markers are the added tokens 151644/151645, not their bytes.
    assertEquals(t.ids.slice(0, 2), [151644, tok.encode("system")[0]]);
    assertEquals(t.ids.filter((id) => id === 151644).length, 3);
    assertEquals(t.ids.slice(t.promptLength - 3, t.promptLength), [151644, ...tok.encode("assistant\n")]);
    assertEquals(tok.decode(t.ids.slice(t.key!.start, t.key!.end)), "42");
    assertEquals(t.ids.slice(-3), [151645, tok.encode("\n")[0], tok.eosId]);
  },
});

Deno.test({
  name: "Qwen3 template: the empty think block before the last answer is part of the response",
  ignore: !present,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sftkey-qwen3-" });
    try {
      for (const f of ["vocab.json", "merges.txt"]) await Deno.symlink(`${shared}qwen2/${f}`, `${dir}/${f}`);
      await Deno.copyFile(`${shared}qwen3/tokenizer_config.json`, `${dir}/tokenizer_config.json`);
      const tok = await Effect.runPromise(loadTokenizer(dir));
      assertEquals(tok.encode("<think></think>"), [151667, 151668]);
      assertEquals(tok.eosId, 151645, "Qwen3's eos_token is <|im_end|>");
      const content = "6 * 7 = 42\n#### 42";
      const r = Either.getOrThrow(renderConversation(tok, compiled(tok), question, content));
      assert(r.prompt.endsWith("<|im_start|>assistant\n"), r.prompt);
      assertEquals(r.response, `<think>\n\n</think>\n\n${content}<|im_end|>\n`);
      assertEquals(r.response.slice(r.contentStart, r.contentStart + content.length), content);
      // A content that the template rewrites (its reasoning is split off) cannot be mapped.
      const rewritten = renderConversation(tok, compiled(tok), question, "<think>hm</think>\n\n#### 42");
      assert(Either.isLeft(rewritten) && rewritten.left.reason.includes("verbatim"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("pipeline data preparation on a messages file: stage two trains on the answer line and end of turn", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sftkey-chat-pipeline-" });
  try {
    await Deno.copyFile(fixtureTokenizer, `${dir}/tokenizer.json`);
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ chat_template: CHATML }));
    // GSM8K-mini rows as conversations with a system turn, the answer given as its own field.
    const gsm8k = new URL("../fixtures/gsm8k-mini/train.jsonl", import.meta.url).pathname;
    const rows = (await Deno.readTextFile(gsm8k)).split("\n").filter((l) => l !== "").slice(0, 200).map(
      (l) => {
        const r = JSON.parse(l) as { question: string; answer: string };
        const messages = [
          { role: "system", content: "Solve it." },
          { role: "user", content: r.question },
          { role: "assistant", content: r.answer },
        ];
        return JSON.stringify({ messages, answer: r.answer.split("#### ")[1] });
      },
    );
    await Deno.writeTextFile(`${dir}/chat.jsonl`, rows.join("\n") + "\n");
    const pipeline = buildSftkey({
      quick: true,
      train: `${dir}/chat.jsonl`,
      format: "messages",
      // Generated replies have no answer field: evaluation (and so the pipeline) needs a locator for them.
      locator: { kind: "gsm8k" },
      evalOnTrain: true,
      tokenizer: `${dir}/tokenizer.json`,
    });
    await Effect.runPromise(runExport(pipeline, { runDir: `${dir}/run`, out: `${dir}/out` }));
    const tok = await Effect.runPromise(loadTokenizer(dir));
    const stageTwo = (await Deno.readTextFile(`${dir}/out/sftkey-stage-two.jsonl`)).split("\n").filter((l) =>
      l
    )
      .map((l) => JSON.parse(l) as { input_ids: number[]; completion_mask: number[] });
    assertEquals(stageTwo.length, 200);
    stageTwo.forEach((r, i) => {
      const answer = (JSON.parse(rows[i]) as { answer: string }).answer;
      const prompt = tok.decode(r.input_ids.slice(0, r.completion_mask.indexOf(1)));
      assert(prompt.startsWith("<|im_start|>system\nSolve it.<|im_end|>\n<|im_start|>user\nWhat is"), prompt);
      const trained = tok.decode(r.input_ids.filter((_, t) => r.completion_mask[t] === 1));
      assertEquals(trained, `#### ${answer}<|im_end|>\n<|endoftext|>`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
