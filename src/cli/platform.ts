/**
 * The services @effect/cli needs (FileSystem, Path, Terminal), implemented on Deno's own APIs.
 *
 * Why not @effect/platform-node: it declares peer dependencies (@effect/cluster, rpc, sql) that drag in
 * native packages whose builds the registry we can reach lacks. The CLI only needs to check paths, print
 * help and know the terminal width; we never prompt interactively, so input reading is refused.
 */
import { FileSystem, Path, Terminal } from "@effect/platform";
import { Effect, Layer } from "effect";

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
