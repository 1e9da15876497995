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

const isFileSync = (path: string): boolean => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
};

/**
 * The file that stands for the tokenizer in directory `dir` (a tokenizer directory or a model checkpoint):
 * its tokenizer.json, else its vocab.json when merges.txt is beside it (loadTokenizer reads the pair from
 * either), else undefined. A pipeline's tokenizer source is this file with its companions, rather than the
 * directory, so that its cache key covers the tokenizer files and not, say, a checkpoint's weights.
 */
export const tokenizerFileIn = (dir: string): string | undefined => {
  const d = dir.replace(/(.)\/+$/, "$1");
  if (isFileSync(`${d}/tokenizer.json`)) return `${d}/tokenizer.json`;
  if (isFileSync(`${d}/vocab.json`) && isFileSync(`${d}/merges.txt`)) return `${d}/vocab.json`;
  return undefined;
};
