/**
 * Stat records (engine/file_stats.ts): a cached rerun trusts a digest whose file's size, times, inode
 * and device are unchanged, and hashes every other file. These tests pin down both sides: a changed file
 * is always caught (also with its mtime put back), a touched one is hashed again and found equal, and a
 * change invisible to stat (simulated by forging the record, as bit rot would look) passes a stat lookup
 * but not a full one (`status --verify`, or a step about to read the artifact).
 */
import { assert, assertEquals } from "./assert.ts";
import { Effect } from "effect";
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { pipelineStatus, runPipeline } from "../src/engine/runner.ts";
import { ArtifactStore, MANIFEST, type Manifest } from "../src/engine/store.ts";
import { RACY_MS, statOf, trusted } from "../src/engine/file_stats.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { count, upper } from "./engine_test_helpers.ts";

const build = (file: string) => {
  const p = new PipelineBuilder("toy");
  const text = p.source("text", file);
  const up = p.add("up", upper, { suffix: "!" }, { text });
  p.add("count", count, { scale: 1 }, { upper: up });
  return p.build();
};

const store = (dir: string) => new ArtifactStore(`${dir}/artifacts`);

const run = async (dir: string, file: string, force: string[] = []) => {
  const lines: string[] = [];
  const r = await Effect.runPromise(runPipeline(build(file), {
    store: store(dir),
    reporter: silentReporter(lines),
    backend: "none",
    force,
  }));
  return { statuses: r.records.map((x) => `${x.name}:${x.status}`), outputs: r.outputs, lines };
};

const status = async (dir: string, file: string, verify = false) =>
  (await Effect.runPromise(pipelineStatus(build(file), store(dir), verify))).map((s) =>
    `${s.node.name}:${s.state}`
  );

const past = (seconds: number) => new Date(Date.now() - seconds * 1000);

/** Puts every file of an artifact some minutes in the past (a touch: content unchanged). */
const ageArtifact = async (dir: string) => {
  for (const e of Deno.readDirSync(dir)) {
    if (e.name !== MANIFEST) await Deno.utime(`${dir}/${e.name}`, past(300), past(300));
  }
};

const manifestOf = async (dir: string): Promise<Manifest> =>
  JSON.parse(await Deno.readTextFile(`${dir}/${MANIFEST}`));

/** A run whose artifact `up` has stat records that vouch for its files. */
const settled = async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in.txt`;
  await Deno.writeTextFile(file, "hello world");
  await Deno.utime(file, past(600), past(600));
  const first = await run(dir, file);
  assertEquals(first.statuses, ["up:ran", "count:ran"]);
  const up = first.outputs.get("up")!;
  // A touch changes mtime and ctime: the next lookup hashes the files again, finds them equal and
  // records the new stats.
  await ageArtifact(up);
  const before = await manifestOf(up);
  assertEquals((await run(dir, file)).statuses, ["up:cached", "count:cached"]);
  const after = await manifestOf(up);
  assertEquals(after.files, before.files);
  assertEquals(after.stats!["out.txt"], statOf(await Deno.stat(`${up}/out.txt`)));
  assert(after.stats!["out.txt"].mtimeMs !== before.stats!["out.txt"].mtimeMs, "the touch was recorded");
  return { dir, file, up };
};

Deno.test("stat cache: a same-size change is caught, also with its mtime put back a second later", async () => {
  const { dir, file, up } = await settled();
  // An ordinary edit moves the mtime.
  await Deno.writeTextFile(`${up}/out.txt`, "HELLO WORLD?"); // same size as "HELLO WORLD!"
  let again = await run(dir, file);
  assertEquals(again.statuses, ["up:ran", "count:cached"]);
  assert(
    again.lines.some((l) => /corrupt.*out\.txt does not match its digest/.test(l)),
    again.lines.join("\n"),
  );

  // An edit that puts the mtime back: the change time still moves (Deno reports it to the second, so
  // the edit is made in a later second than the record; within the same second only --verify sees it).
  const fresh = again.outputs.get("up")!;
  await ageArtifact(fresh);
  assertEquals((await run(dir, file)).statuses, ["up:cached", "count:cached"]);
  const info = await Deno.stat(`${fresh}/out.txt`);
  await new Promise((r) => setTimeout(r, 1100));
  await Deno.writeTextFile(`${fresh}/out.txt`, "HELLO WORLD?");
  await Deno.utime(`${fresh}/out.txt`, info.atime!, info.mtime!);
  assertEquals((await Deno.stat(`${fresh}/out.txt`)).mtime, info.mtime);
  again = await run(dir, file);
  assertEquals(again.statuses, ["up:ran", "count:cached"]);
  assertEquals(await Deno.readTextFile(`${again.outputs.get("up")}/out.txt`), "HELLO WORLD!");
});

/** Corrupts out.txt and forges its stat record to match: a change stat cannot see (bit rot). */
const rot = async (up: string) => {
  await Deno.writeTextFile(`${up}/out.txt`, "HELLO WORLD?");
  await Deno.utime(`${up}/out.txt`, past(300), past(300));
  const m = await manifestOf(up);
  const stats = { ...m.stats, "out.txt": statOf(await Deno.stat(`${up}/out.txt`)) };
  await Deno.writeTextFile(`${up}/${MANIFEST}`, JSON.stringify({ ...m, stats }, null, 2));
};

Deno.test("stat cache: a change stat cannot see passes status, and status --verify catches it", async () => {
  const { dir, file, up } = await settled();
  await rot(up);
  // The stat lookup trusts the record: it did not read the file (it would have found the change).
  assertEquals(await status(dir, file), ["up:cached", "count:cached"]);
  const verified = await Effect.runPromise(pipelineStatus(build(file), store(dir), true));
  assertEquals(verified.map((s) => `${s.node.name}:${s.state}`), ["up:corrupt", "count:blocked"]);
  assert(/out\.txt does not match its digest/.test(verified[0].reason ?? ""), verified[0].reason);
});

Deno.test("stat cache: an artifact a running step reads is verified in full first", async () => {
  const { dir, file, up } = await settled();
  await rot(up);
  // `count` reruns (forced) and reads `up`: the rot is found, `up` recomputed, and count reads good data.
  const again = await run(dir, file, ["count"]);
  assertEquals(again.statuses, ["up:ran", "count:ran"]);
  assertEquals(await Deno.readTextFile(`${again.outputs.get("up")}/out.txt`), "HELLO WORLD!");
  // Nothing runs: artifacts only passed on are checked by stat (a forged record passes, as above).
  await rot(again.outputs.get("up")!);
  assertEquals((await run(dir, file)).statuses, ["up:cached", "count:cached"]);
});

Deno.test("stat cache: sources are remembered by stat; an edit is seen, a touch is not a change", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in.txt`;
  await Deno.writeTextFile(file, "hello world");
  await Deno.utime(file, past(600), past(600));
  assertEquals((await run(dir, file)).statuses, ["up:ran", "count:ran"]);
  const records = `${dir}/artifacts/.source-stats.json`;
  const recorded = JSON.parse(await Deno.readTextFile(records))[file];
  assertEquals(recorded.stat, statOf(await Deno.stat(file)));

  // A touch: hashed again, same digest, all cached.
  await Deno.utime(file, past(500), past(500));
  assertEquals((await run(dir, file)).statuses, ["up:cached", "count:cached"]);
  assertEquals(JSON.parse(await Deno.readTextFile(records))[file].digest, recorded.digest);

  // A same-size edit with the mtime put back is still seen (the change time moved).
  await Deno.writeTextFile(file, "jello world");
  await Deno.utime(file, past(500), past(500));
  assertEquals((await run(dir, file)).statuses, ["up:ran", "count:ran"]);

  // A record that no longer tells the truth while the stat holds (forged here) is believed by a plain
  // status, and not by status --verify, which hashes the source.
  const all = JSON.parse(await Deno.readTextFile(records));
  all[file].digest = "0".repeat(64);
  await Deno.writeTextFile(records, JSON.stringify(all));
  assertEquals(await status(dir, file), ["up:pending", "count:blocked"]);
  assertEquals(await status(dir, file, true), ["up:cached", "count:cached"]);
});

Deno.test("stat cache: a record no older than its file's mtime plus the margin is not trusted (racy files)", () => {
  const stat = { size: 5, mtimeMs: 10_000, ctimeMs: 10_000, ino: 7, dev: 1 };
  assert(trusted(stat, { ...stat }, 10_000 + RACY_MS + 1));
  assert(!trusted(stat, { ...stat }, 10_000 + RACY_MS), "recorded within the margin");
  assert(!trusted(stat, { ...stat, ctimeMs: 11_000 }, 20_000));
  assert(!trusted(stat, { ...stat, ino: 8 }, 20_000));
  assert(!trusted(undefined, stat, 20_000));
});

Deno.test("stat cache: a source edited right after it was hashed is hashed again", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in.txt`;
  await Deno.writeTextFile(file, "hello world");
  assertEquals((await run(dir, file)).statuses, ["up:ran", "count:ran"]);
  // A same-size edit whose stat the record then matches exactly (forged: within one timestamp tick a
  // real edit can keep every field). Only the racy rule sees it: the record is not older than the
  // file's mtime by the margin, so the file is hashed.
  await Deno.writeTextFile(file, "jello world");
  const records = `${dir}/artifacts/.source-stats.json`;
  const all = JSON.parse(await Deno.readTextFile(records));
  all[file].stat = statOf(await Deno.stat(file));
  await Deno.writeTextFile(records, JSON.stringify(all));
  assertEquals((await run(dir, file)).statuses, ["up:ran", "count:ran"]);
});
