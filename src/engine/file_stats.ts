/**
 * Stat records: what lets a cached rerun trust a file's recorded SHA-256 without reading the file, as
 * DVC and git do. A file whose size, modification time, change time, inode and device all equal the
 * record made when it was hashed is taken to hold the same bytes; any other file is hashed again.
 *
 * The trade-off: a change that keeps all five (bit rot, a tool that writes in place and restores the
 * times within the same change-time second) is not seen by the stat check; `status --verify` and every
 * step that reads an artifact hash in full.
 *
 * Racy files: timestamps have a granularity (Deno reports milliseconds), so a file modified within the
 * same tick as the write that was hashed would keep its mtime. A record is therefore trusted only if the
 * file's mtime is at least RACY_MS older than the moment the record was written; a younger one is hashed
 * again until it is older (git's "racily clean" rule).
 */

export interface FileStat {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  readonly dev: number;
}

/** Margin against timestamp granularity; far above any file system's tick. */
export const RACY_MS = 100;

export const statOf = (info: Deno.FileInfo): FileStat => ({
  size: info.size,
  mtimeMs: info.mtime?.getTime() ?? -1,
  ctimeMs: info.ctime?.getTime() ?? -1,
  ino: info.ino ?? -1,
  dev: info.dev,
});

export const sameStat = (a: FileStat, b: FileStat): boolean =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino &&
  a.dev === b.dev;

/** Whether a record of `now` (the file's stat as it is) made at `recordedMs` vouches for the file. */
export const trusted = (recorded: FileStat | undefined, now: FileStat, recordedMs: number): boolean =>
  recorded !== undefined && recorded.mtimeMs >= 0 && sameStat(recorded, now) &&
  now.mtimeMs < recordedMs - RACY_MS;

const isFileStat = (v: unknown): v is FileStat =>
  typeof v === "object" && v !== null &&
  ["size", "mtimeMs", "ctimeMs", "ino", "dev"].every((k) =>
    typeof (v as Record<string, unknown>)[k] === "number"
  );

/** A stat record read from JSON written by an older or damaged file is ignored, not trusted. */
export const parseStat = (v: unknown): FileStat | undefined => (isFileStat(v) ? v : undefined);

/**
 * Hashes a file and returns its digest with the stat it had while being hashed, or no stat when it
 * changed during hashing (then only the digest, of whatever was read, is returned and nothing recorded).
 */
export const hashWithStat = async (
  path: string,
  hash: (path: string) => Promise<string>,
): Promise<{ digest: string; stat?: FileStat }> => {
  const before = statOf(await Deno.stat(path));
  const digest = await hash(path);
  const after = statOf(await Deno.stat(path));
  return sameStat(before, after) ? { digest, stat: after } : { digest };
};
