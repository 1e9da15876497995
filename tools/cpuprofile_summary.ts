/**
 * Where a `deno run --cpu-prof` profile spent its time: self time per function (name and location),
 * summed over the profile's nodes, as shares of the whole profile, largest first.
 *
 *   deno run --allow-read tools/cpuprofile_summary.ts FILE.cpuprofile [TOP]
 */

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>;
  readonly samples: ReadonlyArray<number>;
  readonly timeDeltas: ReadonlyArray<number>;
}

/** Self time (microseconds) per "function (file:line)", largest first, with the total. */
export const selfTimes = (profile: CpuProfile): { total: number; rows: Array<[string, number]> } => {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const f = nodes.get(id)!.callFrame;
    const file = f.url.split("/").slice(-2).join("/");
    const key = `${f.functionName || "(anonymous)"} (${file}:${f.lineNumber + 1})`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt);
  });
  return { total, rows: [...byFunction].sort((a, b) => b[1] - a[1]) };
};

if (import.meta.main) {
  const [file, top] = Deno.args;
  if (!file) throw new Error("usage: tools/cpuprofile_summary.ts FILE.cpuprofile [TOP]");
  const { total, rows } = selfTimes(JSON.parse(await Deno.readTextFile(file)));
  console.log(`total ${(total / 1e6).toFixed(1)} s`);
  for (const [name, t] of rows.slice(0, Number(top ?? 25))) {
    console.log(
      `${(100 * t / total).toFixed(1).padStart(5)}%  ${(t / 1e6).toFixed(2).padStart(7)} s  ${name}`,
    );
  }
}
