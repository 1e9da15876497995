/**
 * Stops a run whose launcher died. The launcher (src/cli/launch.ts) starts this beside main.ts, with the
 * child's pid as its argument and its stdin a pipe only the launcher writes. When main.ts ends, the
 * launcher writes one byte and this exits quietly. End-of-file without that byte means the launcher died
 * without seeing the child end (SIGKILL included: the kernel closes the pipe), and then the child is killed
 * too, which releases the run lock; a killed run resumes on the next one exactly as after a crash.
 *
 * Why a process of its own: main.ts cannot stop itself in time. Training blocks its JavaScript thread for
 * seconds at a time, so a read in main.ts, or in a worker (which cannot end the process), would wait; and
 * main.ts may not signal processes (it has no --allow-run). This has --allow-run and nothing else.
 */
const pid = Number(Deno.args[0]);
// Ctrl-C reaches the whole process group; the launcher forwards it to the child and this waits for the
// launcher's word (or its death) as before.
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => {});
let released = false;
try {
  for await (const chunk of Deno.stdin.readable) {
    if (chunk.length > 0) {
      released = true;
      break;
    }
  }
} catch { /* a read error means the same as end-of-file: the launcher is gone */ }
if (!released && Number.isInteger(pid) && pid > 0) {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* already gone */ }
}
Deno.exit(0);
