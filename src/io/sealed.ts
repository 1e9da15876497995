/**
 * Sealed directories: a directory whose files are listed with their SHA-256 in `seal.json`, written last.
 * Training checkpoints are sealed so that a resumed run can tell a complete, intact checkpoint from one
 * a crash, a full disk or bit rot damaged: a flipped byte in a weights file would still parse, and
 * resuming from it would silently train from wrong weights.
 */
import { listFiles } from "./fs.ts";
import { sha256File } from "./lines.ts";

export const SEAL = "seal.json";

// Streamed: a checkpoint's weights file can be larger than Deno.readFile reads in one piece.
const digestFile = sha256File;

/** Digests of every file below `dir` (the seal itself excluded), by relative path. */
const digests = async (dir: string): Promise<Record<string, string>> => {
  const out: Record<string, string> = {};
  for (const rel of await listFiles(dir)) if (rel !== SEAL) out[rel] = await digestFile(`${dir}/${rel}`);
  return out;
};

/** The content of the seal for `dir` as it is now; the caller writes it (atomically) to `dir/seal.json`. */
export const sealOf = async (dir: string): Promise<string> =>
  JSON.stringify({ files: await digests(dir) }, null, 2) + "\n";

/** Undefined if `dir` matches its seal; otherwise what is wrong, naming the file. */
export const checkSeal = async (dir: string): Promise<string | undefined> => {
  let files: Record<string, string>;
  try {
    const parsed = JSON.parse(await Deno.readTextFile(`${dir}/${SEAL}`));
    files = parsed.files;
    if (typeof files !== "object" || files === null) return `${SEAL} lists no files`;
  } catch (e) {
    return `${SEAL} is missing or unreadable (${e instanceof Error ? e.message : e})`;
  }
  let present: Record<string, string>;
  try {
    present = await digests(dir);
  } catch (e) {
    return `cannot read the directory (${e instanceof Error ? e.message : e})`;
  }
  for (const [rel, digest] of Object.entries(files)) {
    if (!(rel in present)) return `file ${rel} is missing`;
    if (present[rel] !== digest) return `file ${rel} does not match its digest`;
  }
  const extra = Object.keys(present).find((rel) => !(rel in files));
  return extra === undefined ? undefined : `unexpected file ${extra}`;
};
