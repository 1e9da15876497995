/**
 * The worker threads' copies of OpenBLAS for `pipeline --jobs N` on cpu-blas (src/cli/workers.ts says why
 * each thread needs its own). The launcher runs this program with write permission on one fresh directory
 * only, before and after the run: the run itself may load libraries from that directory but not write there
 * (`--deny-write`), so no code of the run can put a library of its own where it may load one.
 *
 *   deno run --allow-read=LIB --allow-write=DIR blas_copies.ts make LIB DIR N   # prints the copies' paths
 *   deno run --allow-write=DIR blas_copies.ts remove DIR
 */

/** The copies' paths, one per worker. */
export const blasCopyPaths = (dir: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${dir}/libopenblas-worker-${i}.so`);

if (import.meta.main) {
  const [command, ...args] = Deno.args;
  if (command === "make") {
    const [lib, dir, n] = args;
    await Deno.mkdir(dir, { recursive: true });
    const paths = blasCopyPaths(dir, Number(n));
    for (const p of paths) await Deno.copyFile(lib, p);
    console.log(paths.join(","));
  } else if (command === "remove") {
    await Deno.remove(args[0], { recursive: true }).catch(() => {});
  } else {
    console.error("usage: blas_copies.ts make LIB DIR N | remove DIR");
    Deno.exit(2);
  }
}
