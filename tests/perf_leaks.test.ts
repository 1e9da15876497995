/**
 * No leaks: the number of live tensors is exactly flat, and live JS memory (heap and typed-array backing
 * stores, read after a full garbage collection) stays flat, across training steps and generation calls,
 * on the plain cpu path and (where it loads) with BLAS.
 *
 * The measurements run in a separate process started with --v8-flags=--expose-gc (tests/perf_leaks_probe.ts).
 * Resident memory, which this test used to bound, cannot show a leak: a process that has freed memory
 * before keeps it resident, and leaked copies fill it without raising the peak (measured: a 16 MiB per
 * step leak lowered the peak by 42 MiB after the earlier cases had run).
 *
 * Each bound is derived from the leak it must catch, one JS copy of the weights per call (0.47 MiB):
 * half of what that leak adds per window. Every case also runs leaking exactly that much, and must then
 * cross its bound. SFTKEY_SLOW=1 runs longer windows.
 */
import { assert, assertEquals } from "./assert.ts";
import { leakCases, type LeakResult, limitOf } from "./perf_leaks_cases.ts";

const slow = Deno.env.get("SFTKEY_SLOW") === "1";
const root = new URL("..", import.meta.url).pathname;

let measured: Promise<LeakResult[]> | undefined;
/** Runs the probe once, for every case. */
const results = () =>
  measured ??= (async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        `${root}/tests/perf_leaks_probe.ts`,
        JSON.stringify({ slow }),
      ],
      cwd: root,
      stdout: "piped",
    }).output();
    assert(out.success, `the probe exited with ${out.code}`);
    return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l) as LeakResult);
  })();

const mib = (x: number) => `${(x / 2 ** 20).toFixed(3)} MiB`;

// Which paths exist is known only to the probe (BLAS may not load); the cases listed here are those with
// BLAS, and a path the probe did not measure is reported as skipped by name.
for (const c of leakCases(slow, true)) {
  const what = c.kind === "train" ? "training steps" : "generation calls";
  const name = c.leaked === 0
    ? `${c.path}: ${what} keep tensors and live memory flat`
    : `${c.path}: ${what} leaking ${mib(c.leaked)} each cross the live-memory bound`;
  Deno.test(name, async (t) => {
    const r = (await results()).find((x) => x.path === c.path && x.kind === c.kind && x.leaked === c.leaked);
    if (r === undefined) {
      assertEquals(c.path, "cpu-blas", "the plain cpu path is always measured");
      await t.step({ name: "skipped: OpenBLAS did not load", ignore: true, fn: () => {} });
      return;
    }
    assertEquals(r.tensorDrift, 0, "live tensor count changed");
    if (c.leaked === 0) {
      assert(r.rise < limitOf(r), `live memory rose ${mib(r.rise)} per window (limit ${mib(limitOf(r))})`);
    } else {
      assert(
        r.rise >= limitOf(r),
        `a leak raised live memory by only ${mib(r.rise)} (limit ${mib(limitOf(r))})`,
      );
    }
  });
}
