/**
 * Chat templates: rendering `{messages: [{role, content}, ...]}` conversations with a tokenizer's Jinja
 * chat template (through @huggingface/jinja), and cutting the rendered text into the prompt and the
 * response the rest of the toolkit trains on.
 *
 * The cut follows `add_generation_prompt` as Hugging Face defines it: the prompt is the conversation
 * before the last assistant turn rendered with the generation prompt (`<|im_start|>assistant\n` for
 * ChatML), which is exactly what a model is given at inference time; the response is the rest of the
 * whole conversation's rendering (the last assistant message and the template's end-of-turn text). The
 * key is located in the last assistant message, and `chatExample` finds that message inside the rendered
 * response so the key's character span carries over exactly.
 *
 * Templates come with downloaded checkpoints, so they are treated as untrusted: @huggingface/jinja has no
 * file or network access (no include/import/extends, no host objects), and rendering here runs with a
 * step budget, a time limit, a cap on `range()` and on the size of any value, failing with
 * ChatTemplateInvalid instead of hanging or exhausting memory.
 */
import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { Either } from "effect";
import { ChatTemplateInvalid } from "../errors.ts";
import type { TextTokenizer } from "./tokenizer.ts";

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface RenderLimits {
  /** Wall-clock limit for one render, in milliseconds. */
  readonly maxMillis: number;
  /** Interpreter steps (expression and statement evaluations, plus `range()` elements) for one render. */
  readonly maxSteps: number;
  /** Longest string any expression may produce, the output included, in UTF-16 code units. */
  readonly maxChars: number;
}

/**
 * Far above what real chat templates need (the Qwen3 template takes a few thousand steps for a short
 * conversation) and low enough that a hostile template fails within about a second.
 */
export const DEFAULT_LIMITS: RenderLimits = { maxMillis: 2000, maxSteps: 2_000_000, maxChars: 4_000_000 };

/** Thrown inside the interpreter when a limit is hit; turned into ChatTemplateInvalid. */
class LimitExceeded extends Error {}

interface Budget {
  steps: number;
  readonly deadline: number;
  readonly limits: RenderLimits;
}

const spend = (budget: Budget, steps: number) => {
  budget.steps += steps;
  if (budget.steps > budget.limits.maxSteps) {
    throw new LimitExceeded(`more than ${budget.limits.maxSteps} interpreter steps`);
  }
  // performance.now() is cheap next to an interpreter step; checking every step keeps the limit tight.
  if (performance.now() > budget.deadline) {
    throw new LimitExceeded(`rendering took longer than ${budget.limits.maxMillis} ms`);
  }
};

type Evaluate = Interpreter["evaluate"];

/** The library's interpreter, with every evaluation charged to the budget and every value's size capped. */
class LimitedInterpreter extends Interpreter {
  constructor(env: Environment, private readonly budget: Budget) {
    super(env);
  }

  override evaluate(...args: Parameters<Evaluate>): ReturnType<Evaluate> {
    spend(this.budget, 1);
    const value = super.evaluate(...args);
    if (typeof value.value === "string" && value.value.length > this.budget.limits.maxChars) {
      throw new LimitExceeded(`a value longer than ${this.budget.limits.maxChars} characters`);
    }
    return value;
  }
}

/**
 * The globals a chat template sees, as @huggingface/jinja's Template.render sets them, except that
 * `range()` is charged to the budget (it builds its list eagerly, so `range(10**9)` would exhaust memory
 * before the next step is counted) and `strftime_now` is left out: a rendering that depends on today's
 * date would change the training data without changing any input the cache keys see (templates that use
 * it, such as Llama 3.1's, fall back to a fixed date when it is undefined).
 */
const globals = (budget: Budget): Environment => {
  const env = new Environment();
  for (const [name, value] of [["false", false], ["true", true], ["none", null]] as const) {
    env.set(name, value);
    env.set(name[0].toUpperCase() + name.slice(1), value);
  }
  env.set("raise_exception", (msg: unknown) => {
    throw new Error(`the template raised an exception: ${String(msg)}`);
  });
  env.set("range", (start: number, stop?: number, step = 1) => {
    const [from, to] = stop === undefined ? [0, start] : [start, stop];
    if (step === 0) throw new Error("range() step must not be zero");
    const length = Math.max(0, Math.ceil((to - from) / step));
    spend(budget, length);
    return Array.from({ length }, (_, i) => from + i * step);
  });
  return env;
};

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** A parsed chat template; `render` is synchronous and bounded by `limits`. */
export interface ChatTemplate {
  /** Where the template came from (the tokenizer's path), for error messages. */
  readonly source: string;
  readonly render: (
    variables: Readonly<Record<string, unknown>>,
    example?: string,
  ) => Either.Either<string, ChatTemplateInvalid>;
}

/** Parse a Jinja chat template; a syntax error (or a construct the library lacks) is ChatTemplateInvalid. */
export const compileChatTemplate = (
  text: string,
  source: string,
  limits: RenderLimits = DEFAULT_LIMITS,
): Either.Either<ChatTemplate, ChatTemplateInvalid> => {
  let parsed: Template["parsed"];
  try {
    // The Template constructor lexes with trim_blocks and lstrip_blocks, as transformers renders templates.
    parsed = new Template(text).parsed;
  } catch (e) {
    return Either.left(
      new ChatTemplateInvalid({ template: source, reason: `does not parse: ${message(e)}` }),
    );
  }
  return Either.right({
    source,
    render: (variables, example) => {
      const budget: Budget = { steps: 0, deadline: performance.now() + limits.maxMillis, limits };
      try {
        const env = globals(budget);
        for (const [name, value] of Object.entries(variables)) env.set(name, value);
        const out = new LimitedInterpreter(env, budget).run(parsed);
        return Either.right(String(out.value));
      } catch (e) {
        // A stack overflow (a macro calling itself) is a RangeError; like the limits, it is the template's fault.
        return Either.left(
          new ChatTemplateInvalid({ template: source, ...(example ? { example } : {}), reason: message(e) }),
        );
      }
    },
  });
};

/** The template's variables for `messages`, as transformers' apply_chat_template passes them. */
const variables = (
  tok: TextTokenizer,
  messages: ReadonlyArray<ChatMessage>,
  addGenerationPrompt: boolean,
) => ({
  ...tok.specialTokens,
  messages: messages.map((m) => ({ role: m.role, content: m.content })),
  add_generation_prompt: addGenerationPrompt,
});

/** A conversation cut for training: `prompt + response` is the whole rendered conversation. */
export interface ChatText {
  readonly prompt: string;
  readonly response: string;
  /** Where the last assistant message's content starts in `response`. */
  readonly contentStart: number;
}

/**
 * A string that no message contains and that no template transforms: stands in for the last assistant
 * message's content to find where the template puts it.
 */
const placeholder = (content: string): string => {
  let p = "\u{E000}sftkey-content\u{E001}";
  while (content.includes(p)) p += "\u{E000}";
  return p;
};

/**
 * Render `context` (the messages before the last assistant turn) followed by an assistant message with
 * `content`, and cut it into prompt and response (see the file comment). Fails with ChatTemplateInvalid
 * when the template renders the prompt differently from the start of the whole conversation (the model
 * would be trained on a prompt it never sees at inference), or transforms or drops the content (the key's
 * characters could not be found in the rendered text).
 */
export const renderConversation = (
  tok: TextTokenizer,
  template: ChatTemplate,
  context: ReadonlyArray<ChatMessage>,
  content: string,
  example?: string,
): Either.Either<ChatText, ChatTemplateInvalid> =>
  Either.gen(function* () {
    const fail = (reason: string) =>
      Either.left(
        new ChatTemplateInvalid({ template: template.source, ...(example ? { example } : {}), reason }),
      );
    const prompt = yield* template.render(variables(tok, context, true), example);
    const full = yield* template.render(
      variables(tok, [...context, { role: "assistant", content }], false),
      example,
    );
    if (!full.startsWith(prompt)) {
      return yield* fail(
        "the conversation before the last assistant turn, rendered with add_generation_prompt, is not a " +
          "prefix of the whole conversation's rendering, so the prompt cannot be cut off exactly",
      );
    }
    const marker = placeholder(content);
    const marked = yield* template.render(
      variables(tok, [...context, { role: "assistant", content: marker }], false),
      example,
    );
    const at = marked.indexOf(marker);
    const rebuilt = at < 0 ? undefined : marked.slice(0, at) + content + marked.slice(at + marker.length);
    if (rebuilt !== full || at < prompt.length || marked.indexOf(marker, at + 1) >= 0) {
      return yield* fail(
        "the template does not put the last assistant message into the text verbatim and once " +
          "(it rewrites, splits or repeats it), so the key cannot be mapped into the rendered text",
      );
    }
    return { prompt, response: full.slice(prompt.length), contentStart: at - prompt.length };
  });

/** The part of a located record a chat example changes (see chatExample). */
export interface ChatRecord {
  readonly source: string;
  readonly prompt: string;
  readonly response: string;
  readonly key: { readonly start: number; readonly end: number };
  readonly answer_start: number;
  /** The messages before the last assistant turn; `response` is that turn's content. */
  readonly chat?: ReadonlyArray<ChatMessage>;
}

/**
 * A located "messages" record rewritten for plain tokenisation: the prompt becomes the rendered prompt (to
 * be used with the template "{prompt}", i.e. as is), the response the rendered last turn, and the key and
 * answer start move with the content. Records without `chat` are returned unchanged.
 */
export const chatExample = <R extends ChatRecord>(
  tok: TextTokenizer,
  template: ChatTemplate | undefined,
  record: R,
): Either.Either<R, ChatTemplateInvalid> => {
  if (record.chat === undefined) return Either.right(record);
  if (template === undefined) {
    return Either.left(
      new ChatTemplateInvalid({
        template: tok.path,
        example: record.source,
        reason: "the tokenizer has no chat_template (tokenizer_config.json), which the messages format needs",
      }),
    );
  }
  return renderConversation(tok, template, record.chat, record.response, record.source).pipe(
    Either.map((c) => ({
      ...record,
      prompt: c.prompt,
      response: c.response,
      key: { start: record.key.start + c.contentStart, end: record.key.end + c.contentStart },
      answer_start: record.answer_start + c.contentStart,
    })),
  );
};

/** The tokenizer's chat template, compiled; undefined when it has none. */
export const tokenizerChatTemplate = (
  tok: TextTokenizer,
  limits?: RenderLimits,
): Either.Either<ChatTemplate | undefined, ChatTemplateInvalid> =>
  tok.chatTemplate === undefined
    ? Either.right(undefined)
    : compileChatTemplate(tok.chatTemplate, tok.path, limits);
