/**
 * The artifact store: a content-addressed cache of step outputs.
 *
 * Layout under the store root:
 *   <step>/<key>/            a finished artifact: the step's files plus manifest.json
 *   <step>/<key>.partial/    work in progress; only resumable steps (training) reuse it after a crash
 *   <step>/<key>.corrupt-<t>/ a finished artifact that failed verification, kept for inspection
 *
 * An artifact becomes visible under its final name only by the rename in `commit`, after its manifest
 * (the SHA-256 of every file) is written, so a reader never sees a half-written artifact. Every read
 * goes through `lookup`, which checks the files against the manifest: a truncated, altered or missing
 * file makes the artifact count as absent (and it is moved aside), so it is recomputed, never reused.
 */
import { Effect } from "effect";
import { WriteFailed } from "../errors.ts";
import { canonicalJson, sha256, sha256File } from "./hash.ts";
import { exists, isTempFile, listFiles, removeIfExists, writeFileAtomic } from "../io/fs.ts";

export const MANIFEST = "manifest.json";

/** manifest.json of an artifact: what produced it and the digests of its files. */
export interface Manifest {
  /** The cache key it was stored under. */
  readonly key: string;
  /** Name of the step that produced it. */
  readonly step: string;
  /** That step's version. */
  readonly version: number;
  /** The pipeline node that produced it. */
  readonly node: string;
  /** SHA-256 of each file, by path relative to the artifact directory (manifest.json excluded). */
  readonly files: Readonly<Record<string, string>>;
  /**
   * Digest of the content: hash of the `files` map without run metadata (`*.meta.json`). Downstream keys
   * depend on this, not on `key`.
   */
  readonly digest: string;
  /** When it was committed (ISO 8601). */
  readonly created: string;
  /** Seconds the step ran. */
  readonly seconds: number;
}

/** What the store holds under a key: a verified artifact, nothing, or a corrupt artifact and why. */
export type Lookup =
  | { readonly kind: "hit"; readonly dir: string; readonly manifest: Manifest }
  | { readonly kind: "miss" }
  | { readonly kind: "corrupt"; readonly dir: string; readonly reason: string };

/** The content-addressed store of artifacts: `<root>/<step>/<key>/`, each with its manifest. */
export class ArtifactStore {
  /** A store rooted at `root` (a run directory's artifacts/). */
  constructor(readonly root: string) {}

  /** Where the artifact of `step` under `key` lives once committed. */
  dir(step: string, key: string): string {
    return `${this.root}/${step}/${key}`;
  }

  /** The working directory of an attempt at that artifact, renamed to `dir` on commit. */
  partialDir(step: string, key: string): string {
    return `${this.dir(step, key)}.partial`;
  }

  /** Finds a finished artifact and verifies every file against its manifest. */
  lookup(step: string, key: string): Effect.Effect<Lookup> {
    const dir = this.dir(step, key);
    return Effect.promise(async (): Promise<Lookup> => {
      if (!await exists(dir)) return { kind: "miss" };
      const reason = await verify(dir);
      if (typeof reason === "string") return { kind: "corrupt", dir, reason };
      return { kind: "hit", dir, manifest: reason };
    });
  }

  /** Moves a corrupt artifact out of the way (kept for inspection as <key>.corrupt-<time>). */
  quarantine(dir: string): Effect.Effect<void> {
    return Effect.promise(async () => {
      const target = `${dir}.corrupt-${Date.now()}`;
      await Deno.rename(dir, target).catch(() => removeIfExists(dir));
    });
  }

  /**
   * Prepares the working directory for a step. A resumable step keeps what an interrupted attempt left
   * there; any other step starts from an empty directory.
   */
  begin(
    step: string,
    key: string,
    resumable: boolean,
  ): Effect.Effect<{ dir: string; resumed: boolean }, WriteFailed> {
    const dir = this.partialDir(step, key);
    return Effect.tryPromise({
      try: async () => {
        const had = await exists(dir);
        if (had && !resumable) await removeIfExists(dir);
        await Deno.mkdir(dir, { recursive: true });
        if (!had || !resumable) return { dir, resumed: false };
        // Temporary files of an interrupted write are incomplete by construction: drop them, or the
        // commit would hash them into the artifact. So is a manifest written just before a crash.
        let files = await listFiles(dir);
        for (const rel of files) {
          if (isTempFile(rel) || rel === MANIFEST) await removeIfExists(`${dir}/${rel}`);
        }
        files = await listFiles(dir);
        return { dir, resumed: files.length > 0 };
      },
      catch: (e) => new WriteFailed({ path: dir, reason: e instanceof Error ? e.message : String(e) }),
    });
  }

  /** Hashes the working directory's files, writes the manifest, and renames it to its final name. */
  commit(
    meta: { step: string; version: number; key: string; node: string; seconds: number },
  ): Effect.Effect<{ dir: string; manifest: Manifest }, WriteFailed> {
    const partial = this.partialDir(meta.step, meta.key);
    const dir = this.dir(meta.step, meta.key);
    return Effect.gen(function* () {
      const files = yield* Effect.promise(async () => {
        const out: Record<string, string> = {};
        for (const rel of await listFiles(partial)) {
          if (rel !== MANIFEST) out[rel] = await sha256File(`${partial}/${rel}`);
        }
        return out;
      });
      const digest = yield* Effect.promise(() => contentDigest(files));
      const manifest: Manifest = { ...meta, files, digest, created: new Date().toISOString() };
      yield* writeFileAtomic(`${partial}/${MANIFEST}`, JSON.stringify(manifest, null, 2) + "\n");
      yield* Effect.tryPromise({
        try: async () => {
          // A previous artifact under the final name (a forced rerun, a quarantine that failed) is moved
          // aside in one rename, never deleted in place: a crash mid-delete would leave a half artifact
          // visible under the final name.
          const old = `${dir}.old-${crypto.randomUUID().slice(0, 8)}`;
          const hadOld = await Deno.rename(dir, old).then(() => true, () => false);
          await Deno.rename(partial, dir);
          if (hadOld) await removeIfExists(old);
        },
        catch: (e) => new WriteFailed({ path: dir, reason: e instanceof Error ? e.message : String(e) }),
      });
      return { dir, manifest };
    });
  }
}

/**
 * Files named `*.meta.json` hold facts about the run that produced an artifact (wall time, backend),
 * not its content: they are verified like every file but left out of the content digest, so two runs
 * that compute the same output give downstream steps the same keys.
 */
export const isRunMetadata = (rel: string): boolean => rel.endsWith(".meta.json");

/** The content digest: hash of the file map, run metadata excluded. */
export const contentDigest = (files: Readonly<Record<string, string>>): Promise<string> =>
  sha256(canonicalJson(Object.fromEntries(Object.entries(files).filter(([rel]) => !isRunMetadata(rel)))));

/** Returns the manifest if every file matches it, or a reason it does not. */
export const verify = async (dir: string): Promise<Manifest | string> => {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await Deno.readTextFile(`${dir}/${MANIFEST}`));
  } catch (e) {
    return `manifest unreadable (${e instanceof Error ? e.message : e})`;
  }
  if (typeof manifest.files !== "object" || manifest.files === null) return "manifest has no file list";
  const present = new Set((await listFiles(dir)).filter((f) => f !== MANIFEST));
  for (const [rel, digest] of Object.entries(manifest.files)) {
    if (!present.has(rel)) return `file ${rel} is missing`;
    if (await sha256File(`${dir}/${rel}`) !== digest) return `file ${rel} does not match its digest`;
    present.delete(rel);
  }
  if (present.size > 0) return `unexpected file ${[...present][0]}`;
  if (await contentDigest(manifest.files) !== manifest.digest) return "manifest digest mismatch";
  return manifest;
};
