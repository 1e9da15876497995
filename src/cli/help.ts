/**
 * `--help` as a user reads it. @effect/cli's own help names the subcommand the launcher passes (`$ run
 * ...`) and adds a generic line per value type ("A user-defined piece of text."); this prints the same
 * options and descriptions under the task a user types (`deno task pipeline [<pipeline>] [--data FILE]
 * ...`), with each value's placeholder (FILE, DIR, N) and default, as plain text.
 */
import { CliConfig, Command, type HelpDoc, type Span as SpanModule, Usage } from "@effect/cli";

type Span = SpanModule.Span;

const spanText = (s: Span): string => {
  switch (s._tag) {
    case "Text":
    case "URI":
      return s.value;
    case "Sequence":
      return spanText(s.left) + spanText(s.right);
    default:
      return spanText(s.value);
  }
};

/** The type lines @effect/cli adds to every option of a primitive type; the placeholder says as much. */
const GENERIC = new Set([
  "A user-defined piece of text.",
  "An integer.",
  "A floating point number.",
  "A file.",
  "A directory.",
  "A true or false value.",
  "A date without a time-zone in the ISO-8601 format, such as 2007-12-03T10:15:30.",
]);

const render = (doc: HelpDoc.HelpDoc, indent: string): string[] => {
  switch (doc._tag) {
    case "Empty":
      return [];
    case "Header":
      return ["", spanText(doc.value).toUpperCase(), ""];
    case "Paragraph": {
      const text = spanText(doc.value);
      // "One of the following: ..." repeats the choices the option's line already lists.
      return GENERIC.has(text) || text.startsWith("One of the following:") ? [] : [`${indent}${text}`];
    }
    case "Sequence":
      return [...render(doc.left, indent), ...render(doc.right, indent)];
    case "Enumeration":
      return doc.elements.flatMap((e) => render(e, `${indent}- `));
    case "DescriptionList":
      return doc.definitions.flatMap(([term, body]) => [
        `${indent}${spanText(term)}`,
        ...render(body, `${indent}    `),
        "",
      ]);
  }
};

/** Words of a usage line, wrapped at `width` columns with continuation lines indented. */
const wrap = (words: ReadonlyArray<string>, width: number, indent: string): string[] => {
  const lines: string[] = [];
  let line = "";
  for (const w of words) {
    if (line !== "" && line.length + 1 + w.length > width) {
      lines.push(line);
      line = `${indent}  ${w}`;
    } else line = line === "" ? `${indent}${w}` : `${line} ${w}`;
  }
  if (line !== "") lines.push(line);
  return lines;
};

/** Splits a usage span's text into words, keeping each bracketed group ("[--data FILE]") whole. */
const usageWords = (text: string): string[] => {
  const words: string[] = [];
  let depth = 0, word = "";
  for (const ch of text) {
    if (ch === "[" || ch === "(") depth++;
    if (ch === "]" || ch === ")") depth--;
    if (ch === " " && depth === 0) {
      if (word !== "") words.push(word);
      word = "";
    } else word += ch;
  }
  if (word !== "") words.push(word);
  return words;
};

/** The help of `command` as the task `task` (e.g. "deno task pipeline") shows it. */
export const helpText = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  task: string,
): string => {
  const config = CliConfig.defaultConfig;
  const usages = Usage.enumerate(Command.getUsage(command), config).map((span) => {
    // The usage starts with the command's own name, which the task already passes; the positional
    // argument (the pipeline) is shown first, as the README writes it.
    const words = usageWords(spanText(span)).slice(1);
    const positional = (w: string) => /^\[?</.test(w);
    return [task, ...words.filter(positional), ...words.filter((w) => !positional(w))];
  });
  return [
    "USAGE",
    "",
    ...usages.flatMap((words) => wrap(words, 100, "  ")),
    ...render(Command.getHelp(command, config), "  "),
  ].join("\n").replace(/\n{3,}/g, "\n\n").trimEnd() + "\n";
};

/** Whether the arguments ask for help. */
export const wantsHelp = (args: ReadonlyArray<string>) => args.includes("--help") || args.includes("-h");
