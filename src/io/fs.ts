/**
 * File-system primitives with the crash guarantees the cache and checkpoints rely on:
 * a file written with `writeFileAtomic` is either absent or complete under its final name, never half
 * written (temporary sibling, fsync, rename — rename is atomic within one file system).
 */
import { Effect } from "effect";
import { FileUnreadable, WriteFailed } from "../errors.ts";

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Temporary files of `writeFileAtomic` end in `.<pid>.<random>.tmp`. One left behind was cut short by a
 * crash and never renamed, so it is junk by construction (the store removes them before resuming).
 */
export const isTempFile = (name: string): boolean => /\.\d+\.[0-9a-f]{8}\.tmp$/.test(name);

/**
 * Writes one chunk of a file; returns how many bytes were written. Production code always uses
 * `file.write`; tests swap it (`setChunkWriter`) to simulate a full disk without filling one.
 */
export type ChunkWriter = (file: Deno.FsFile, bytes: Uint8Array) => Promise<number>;

const defaultWriter: ChunkWriter = (file, bytes) => file.write(bytes);
let writeChunk: ChunkWriter = defaultWriter;

/** The chunk writer in use (streaming writers call it per chunk, as writeFileAtomic does). */
export const writeChunkOf = (): ChunkWriter => writeChunk;

/** For tests: replace the chunk writer (undefined restores the real one). */
export const setChunkWriter = (writer: ChunkWriter | undefined): void => {
  writeChunk = writer ?? defaultWriter;
};

export const writeFileAtomic = (path: string, data: Uint8Array | string): Effect.Effect<void, WriteFailed> =>
  Effect.tryPromise({
    try: async () => {
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
      const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
      try {
        const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
        try {
          let written = 0;
          while (written < bytes.length) written += await writeChunk(file, bytes.subarray(written));
          await file.sync();
        } finally {
          file.close();
        }
        await Deno.rename(tmp, path);
      } catch (e) {
        // A failed write (disk full, say) leaves nothing behind, not even the temporary file.
        await Deno.remove(tmp).catch(() => {});
        throw e;
      }
    },
    catch: (e) => new WriteFailed({ path, reason: reason(e) }),
  });

/** Copies a file of any size (the kernel copies it; nothing is held in memory) with writeFileAtomic's guarantee. */
export const copyFileAtomic = (from: string, to: string): Effect.Effect<void, WriteFailed> =>
  Effect.tryPromise({
    try: async () => {
      const tmp = `${to}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
      try {
        await Deno.copyFile(from, tmp);
        const file = await Deno.open(tmp, { write: true });
        try {
          await file.sync();
        } finally {
          file.close();
        }
        await Deno.rename(tmp, to);
      } catch (e) {
        await Deno.remove(tmp).catch(() => {});
        throw e;
      }
    },
    catch: (e) => new WriteFailed({ path: to, reason: reason(e) }),
  });

export const readText = (path: string): Effect.Effect<string, FileUnreadable> =>
  Effect.tryPromise({
    try: () => Deno.readTextFile(path),
    catch: (e) => new FileUnreadable({ path, reason: reason(e) }),
  });

/** Reads a whole file; a missing or unreadable file is FileUnreadable. */
export const readFile = (path: string): Effect.Effect<Uint8Array, FileUnreadable> =>
  Effect.tryPromise({
    try: () => Deno.readFile(path),
    catch: (e) =>
      new FileUnreadable({ path, reason: e instanceof Deno.errors.NotFound ? "file not found" : reason(e) }),
  });

export const readJson = (path: string): Effect.Effect<unknown, FileUnreadable> =>
  Effect.flatMap(readText(path), (text) =>
    Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => new FileUnreadable({ path, reason: `not valid JSON: ${reason(e)}` }),
    }));

export const exists = async (path: string): Promise<boolean> => {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
};

export const removeIfExists = async (path: string): Promise<void> => {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
};

/** Relative paths of all regular files below `dir`, sorted, with "/" separators. */
export const listFiles = async (dir: string, prefix = ""): Promise<string[]> => {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) out.push(...await listFiles(`${dir}/${entry.name}`, rel));
    else if (entry.isFile) out.push(rel);
  }
  return out.sort();
};

export const ensureDir = (path: string): Effect.Effect<void, WriteFailed> =>
  Effect.tryPromise({
    try: () => Deno.mkdir(path, { recursive: true }),
    catch: (e) => new WriteFailed({ path, reason: reason(e) }),
  });
