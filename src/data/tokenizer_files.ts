/**
 * Files beside a tokenizer file that loadTokenizer (./tokenizer.ts) reads when they are there: what a cache
 * key of anything tokenised must cover besides the file itself (SourceNode.companions), and what the
 * launcher lets a run read (src/cli/launch.ts). A module of its own so the launcher loads no npm package.
 */
export const TOKENIZER_COMPANIONS: ReadonlyArray<string> = [
  "tokenizer.json",
  "tokenizer_config.json",
  "chat_template.jinja",
  "vocab.json",
  "merges.txt",
];
