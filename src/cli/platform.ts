/**
 * The services @effect/cli needs (FileSystem, Path, Terminal), implemented on Deno's own APIs.
 *
 * Why not @effect/platform-node: it declares peer dependencies (@effect/cluster, rpc, sql) that drag in
 * native packages whose builds the registry we can reach lacks. The CLI only needs to check paths, print
 * help and know the terminal width; we never prompt interactively, so input reading is refused.
 */
import { FileSystem, Path, Terminal } from "@effect/platform";
import { Effect, Layer, Option } from "effect";

const fileInfo = (i: Deno.FileInfo): FileSystem.File.Info => ({
  type: i.isFile ? "File" : i.isDirectory ? "Directory" : i.isSymlink ? "SymbolicLink" : "Unknown",
  mtime: Option.fromNullable(i.mtime),
  atime: Option.fromNullable(i.atime),
  birthtime: Option.fromNullable(i.birthtime),
  dev: i.dev,
  ino: Option.fromNullable(i.ino),
  mode: i.mode ?? 0,
  nlink: Option.fromNullable(i.nlink),
  uid: Option.fromNullable(i.uid),
  gid: Option.fromNullable(i.gid),
  rdev: Option.fromNullable(i.rdev),
  size: FileSystem.Size(i.size),
  blksize: Option.map(Option.fromNullable(i.blksize), FileSystem.Size),
  blocks: Option.fromNullable(i.blocks),
});

const fileSystem = FileSystem.layerNoop({
  exists: (path) =>
    Effect.sync(() => {
      try {
        Deno.statSync(path);
        return true;
      } catch {
        return false;
      }
    }),
  readFileString: (path) => Effect.orDie(Effect.tryPromise(() => Deno.readTextFile(path))),
  // @effect/cli stats every existing path given to a file or directory option to check its type.
  stat: (path) =>
    Effect.orDie(Effect.tryPromise(() => Deno.stat(path))).pipe(Effect.map((info) => fileInfo(info))),
});

const encoder = new TextEncoder();

const terminal = Layer.succeed(
  Terminal.Terminal,
  Terminal.Terminal.of({
    columns: Effect.sync(() => {
      try {
        return Deno.consoleSize().columns;
      } catch {
        return 100;
      }
    }),
    rows: Effect.sync(() => {
      try {
        return Deno.consoleSize().rows;
      } catch {
        return 40;
      }
    }),
    isTTY: Effect.sync(() => Deno.stdout.isTerminal()),
    readInput: Effect.dieMessage("interactive input is not supported; pass every option on the command line"),
    readLine: Effect.dieMessage("interactive input is not supported; pass every option on the command line"),
    display: (text) => Effect.sync(() => void Deno.stdout.writeSync(encoder.encode(text))),
  }),
);

export const DenoCliLayer = Layer.mergeAll(fileSystem, Path.layer, terminal);
