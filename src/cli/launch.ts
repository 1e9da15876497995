/**
 * The least-privilege launcher behind the command tasks (`deno task pipeline | status | export | generate |
 * score | eval | merge`). Deno fixes a process's permission scopes before the program can read its arguments, and the
 * paths a run touches are arguments (`--data ~/d/train.jsonl --run-dir /scratch/r1`). So the task starts
 * this small program, which reads the arguments, and then runs src/cli/main.ts in a child Deno whose scopes
 * are exactly what that command needs:
 *
 * - read: the project (code, fixtures, node_modules), the --data and --test files, the --tokenizer file
 *   with the files its loader reads beside it (or the tokenizer directory), the directory of a pipeline
 *   file (its imports), the --model and --adapter directories, the run directory, the --out directory, and the OpenBLAS
 *   library when the backend may use it;
 * - write: the run directory (default runs/, inside the project) and --out, nothing else;
 * - ffi: the OpenBLAS files the loader may open (src/backend/blas.ts, or SFTKEY_BLAS_LIB), only for the
 *   commands that compute (`pipeline`, `generate`, `score`) and when the backend may be `cpu-blas`
 *   (`--backend auto | cpu-blas`), with `pipeline --jobs N` (N > 1) also the worker threads' copies of it,
 *   which this launcher makes (through src/cli/blas_copies.ts) in a fresh directory that the run may load
 *   from and read but not write (`--deny-write`), and removes after the run; and tfjs-node-gpu's binding
 *   when it is installed and the backend may be `tensorflow`;
 * - `--unstable-webgpu` (Deno's WebGPU) for those commands with `--backend webgpu`;
 * - env and sys (read by the npm packages); never net, never run.
 *
 * Paths on the command line are resolved against the directory the user typed them in (INIT_CWD, set by
 * `deno task`, which itself runs in the project directory) and handed to main.ts as absolute paths; the
 * default run directory stays runs/ in the project.
 *
 * The launcher itself may read (to resolve paths) and start processes (the child and the reaper: Deno's own
 * executable, whose path is only known at run time). It forwards SIGINT/SIGTERM to the child and exits with its status.
 * Beside the child it starts src/cli/reaper.ts, which kills the child when the launcher dies without having
 * seen it end (SIGKILL included); a signal to the launcher alone, which is what a job manager or a user
 * killing the pid they see sends, thus never leaves an orphan run holding the run lock.
 */

import { BLAS_CANDIDATES, findBlas } from "../backend/blas.ts";
import { TOKENIZER_COMPANIONS } from "../data/tokenizer_files.ts";
import { nodeGpuBinding } from "../backend/gpu_binding.ts";

const PROJECT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const MAIN = `${PROJECT}/src/cli/main.ts`;
const REAPER = `${PROJECT}/src/cli/reaper.ts`;
const BLAS_COPIES = `${PROJECT}/src/cli/blas_copies.ts`;

/** Flags whose value is a file the run reads, and nothing beside it. */
const FILE_FLAGS = ["--data", "--test"] as const;
/** Flags whose value is a directory the run reads. */
const DIR_FLAGS = ["--model", "--adapter"] as const;
/** Flags whose value is a directory the run writes. */
const WRITE_FLAGS = ["--run-dir", "--out"] as const;

/** A positional argument naming a user's pipeline file (rather than a shipped pipeline's name). */
const isPipelineFile = (a: string) => !a.startsWith("-") && a.endsWith(".ts");

const isAbsolute = (p: string) => p.startsWith("/");
const resolvePath = (cwd: string, p: string) => {
  const abs = isAbsolute(p) ? p : `${cwd}/${p}`;
  // Normalise "." and ".." so scopes are plain directories.
  const parts: string[] = [];
  for (const part of abs.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
};
const parentOf = (p: string) => p.slice(0, p.lastIndexOf("/")) || "/";

/** The value of `--flag V` or `--flag=V` (every occurrence). */
const flagValues = (args: ReadonlyArray<string>, flag: string): string[] => {
  const out: string[] = [];
  args.forEach((a, i) => {
    if (a === flag && i + 1 < args.length) out.push(args[i + 1]);
    else if (a.startsWith(`${flag}=`)) out.push(a.slice(flag.length + 1));
  });
  return out;
};

const isDirectory = (p: string): boolean => {
  try {
    return Deno.statSync(p).isDirectory;
  } catch {
    return false;
  }
};

const resolvedOrSame = (p: string) => {
  try {
    return Deno.realPathSync(p);
  } catch {
    return p;
  }
};

export interface Scopes {
  readonly read: ReadonlyArray<string>;
  readonly write: ReadonlyArray<string>;
  readonly ffi: ReadonlyArray<string>;
  /** The command computes on `--backend webgpu`: the child needs Deno's `--unstable-webgpu`. */
  readonly webgpu?: boolean;
  /** `--jobs N` on cpu-blas: where the launcher puts the workers' N copies of OpenBLAS (write denied). */
  readonly blasCopies?: { readonly dir: string; readonly count: number };
}

/**
 * The scopes `command args` needs, paths resolved against `cwd`. `blasLib` is SFTKEY_BLAS_LIB when set;
 * `copiesDir`, where the workers' copies of OpenBLAS would go (`--jobs`). Pure apart from asking whether a
 * path is a directory.
 */
export const scopesFor = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  blasLib?: string,
  copiesDir?: string,
): Scopes => {
  const read = new Set<string>([PROJECT]);
  const write = new Set<string>();
  for (const flag of [...FILE_FLAGS, ...DIR_FLAGS]) {
    for (const v of flagValues(args, flag)) read.add(resolvePath(cwd, v));
  }
  // A tokenizer directory, or a tokenizer file with the files its loader reads beside it.
  for (const v of flagValues(args, "--tokenizer")) {
    const p = resolvePath(cwd, v);
    if (isDirectory(p)) read.add(p);
    else for (const f of [p, ...TOKENIZER_COMPANIONS.map((c) => `${parentOf(p)}/${c}`)]) read.add(f);
  }
  // A pipeline file (the first argument ending in .ts) and what lies beside it.
  const file = args.find(isPipelineFile);
  if (file) read.add(parentOf(resolvePath(cwd, file)));
  for (const flag of WRITE_FLAGS) {
    for (const v of flagValues(args, flag)) {
      const p = resolvePath(cwd, v);
      read.add(p);
      write.add(p);
    }
  }
  // The default run directory is runs/<pipeline> under the current directory.
  if (["run", "status", "export", "eval"].includes(command) && flagValues(args, "--run-dir").length === 0) {
    read.add(`${cwd}/runs`);
    write.add(`${cwd}/runs`);
  }
  // Commands that compute with a model pick a backend ("auto" unless --backend says otherwise).
  const computes = ["run", "generate", "score", "eval"].includes(command);
  const backend = flagValues(args, "--backend").at(-1) ?? "auto";
  // Exactly the files the BLAS loader may open (src/backend/blas.ts), or the one SFTKEY_BLAS_LIB names.
  const ffi = computes && (backend === "auto" || backend === "cpu-blas")
    ? (blasLib ? [resolvePath(cwd, blasLib)] : [...BLAS_CANDIDATES])
    : [];
  // --jobs above 1 on cpu-blas: each worker thread loads its own copy of OpenBLAS (src/cli/workers.ts),
  // from a directory the run may not write to, so that it can load no library of its own making.
  const jobs = Number(flagValues(args, "--jobs").at(-1) ?? "1");
  const blasCopies = command === "run" && ffi.length > 0 && jobs > 1 && copiesDir !== undefined
    ? { dir: copiesDir, count: Math.floor(jobs) }
    : undefined;
  if (blasCopies) {
    ffi.push(blasCopies.dir);
    read.add(blasCopies.dir);
  }
  // tfjs-node-gpu's Node-API addon, when it was installed (see README, "GPU backend").
  const gpu = computes && (backend === "auto" || backend === "tensorflow") ? nodeGpuBinding() : undefined;
  // As linked under node_modules/ and as resolved (.deno/...): which one Deno checks is not documented.
  if (gpu) ffi.push(gpu, resolvedOrSame(gpu));
  for (const f of ffi) read.add(f);
  // WebGPU (src/backend/webgpu.ts) is behind an unstable flag; "auto" never picks it, so only asked for.
  const webgpu = computes && backend === "webgpu";
  return {
    read: [...read],
    write: [...write],
    ffi,
    ...(webgpu ? { webgpu } : {}),
    ...(blasCopies ? { blasCopies } : {}),
  };
};

/**
 * The arguments with every path made absolute against `userCwd`: `deno task` runs in the project
 * directory, but a user types paths relative to where they are (INIT_CWD).
 */
export const absolutePaths = (args: ReadonlyArray<string>, userCwd: string): string[] => {
  const pathFlags: ReadonlyArray<string> = [...FILE_FLAGS, ...DIR_FLAGS, ...WRITE_FLAGS, "--tokenizer"];
  const out: string[] = [];
  let pipelineFileSeen = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.indexOf("=");
    if (a.startsWith("--") && eq > 0 && pathFlags.includes(a.slice(0, eq))) {
      out.push(`${a.slice(0, eq)}=${resolvePath(userCwd, a.slice(eq + 1))}`);
    } else if (pathFlags.includes(a) && i + 1 < args.length) {
      out.push(a, resolvePath(userCwd, args[++i]));
    } else if (!pipelineFileSeen && isPipelineFile(a)) {
      pipelineFileSeen = true;
      out.push(resolvePath(userCwd, a));
    } else {
      out.push(a);
    }
  }
  return out;
};

/** The child's `deno run` flags for these scopes. */
export const denoFlags = (s: Scopes): string[] => [
  "--no-prompt",
  `--allow-read=${s.read.join(",")}`,
  ...(s.write.length > 0 ? [`--allow-write=${s.write.join(",")}`] : []),
  "--allow-env",
  "--allow-sys",
  ...(s.ffi.length > 0 ? [`--allow-ffi=${s.ffi.join(",")}`] : []),
  ...(s.webgpu ? ["--unstable-webgpu"] : []),
  ...(s.blasCopies ? [`--deny-write=${s.blasCopies.dir}`] : []),
];

/** Runs src/cli/blas_copies.ts with write permission on `dir` only; its standard output, or undefined on failure. */
const blasCopiesHelper = async (args: string[], read: string[], dir: string): Promise<string | undefined> => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      ...(read.length > 0 ? [`--allow-read=${read.join(",")}`] : []),
      `--allow-write=${dir}`,
      BLAS_COPIES,
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
};

if (import.meta.main) {
  const [command = "", ...given] = Deno.args;
  const cwd = Deno.cwd();
  const args = absolutePaths(given, Deno.env.get("INIT_CWD") ?? cwd);
  const blasLib = Deno.env.get("SFTKEY_BLAS_LIB");
  const copiesDir = `${Deno.env.get("TMPDIR") ?? "/tmp"}/sftkey-blas-${Deno.pid}`;
  const scopes = scopesFor(command, args, cwd, blasLib, copiesDir);
  if (Deno.env.get("SFTKEY_SHOW_PERMISSIONS") === "1") {
    console.error(`permissions: ${denoFlags(scopes).join(" ")}`);
  }
  // The workers' copies of OpenBLAS, made before the run and removed after it; without them (no library,
  // or the copy failed) the run says that --jobs needs them.
  const lib = scopes.blasCopies ? findBlas(blasLib && resolvePath(cwd, blasLib)) : undefined;
  const copies = scopes.blasCopies && lib
    ? await blasCopiesHelper(["make", lib, copiesDir, String(scopes.blasCopies.count)], [lib], copiesDir)
    : undefined;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...denoFlags(scopes), MAIN, command, ...args],
    ...(copies ? { env: { SFTKEY_BLAS_COPIES: copies } } : {}),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
    });
  }
  // Its stdin is the pipe whose end-of-file, without the byte written below, says the launcher died.
  const reaper = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-run", REAPER, String(child.pid)],
    stdin: "piped",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const lifeline = reaper.stdin.getWriter();
  const status = await child.status;
  // The child has ended: release the reaper so that it never signals a pid the system may reuse.
  await lifeline.write(new Uint8Array([1])).catch(() => {});
  await lifeline.close().catch(() => {});
  await reaper.status;
  if (copies) await blasCopiesHelper(["remove", copiesDir], [], copiesDir);
  // A child ended by a signal reports 128 + its number as its code, as a shell does.
  Deno.exit(status.code);
}
