/**
 * What the bench's runs share: one measurement of ours in a child process (bench/main.ts --item), one of
 * PyTorch's (tools/bench/torch_bench.py), and the statistics. Used by bench/main.ts (the table) and
 * bench/sweep.ts (cost against sequence length).
 */
import { installedMatmul } from "../src/backend/matmul.ts";
import type { BenchItem, ItemResult } from "./items.ts";

export const TORCH_SCRIPT = new URL("../tools/bench/torch_bench.py", import.meta.url).pathname;
export const PYTHON = "/usr/bin/python3";

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b), h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

export const flag = (args: string[], name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

/** Flags that give a child this process's permissions (FFI to the BLAS library included). */
export const childFlags = (): string[] => {
  const flags = ["--allow-read", "--allow-env", "--allow-sys"];
  const blas = installedMatmul();
  if (blas) flags.push(`--allow-ffi=${blas.path}`);
  return flags;
};

export const lastJsonLine = (text: string): unknown => {
  const line = text.trim().split("\n").reverse().find((l) => l.startsWith("{"));
  if (line === undefined) throw new Error(`no result in:\n${text.slice(-2000)}`);
  return JSON.parse(line);
};

export const runOurs = async (item: BenchItem): Promise<ItemResult> => {
  const script = new URL("./main.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...childFlags(), script, "--item", JSON.stringify(item)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`bench item failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return lastJsonLine(text) as ItemResult;
};

export interface TorchResult {
  readonly samples: number[];
  readonly peak_rss_mb: number;
  readonly threads: number;
  readonly torch: string;
}

/** Whether PyTorch can be imported, with the reason when it cannot. */
export const torchAvailable = async (): Promise<
  { ok: true; version: string } | { ok: false; reason: string }
> => {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", "import torch; print(torch.__version__)"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return out.success
      ? { ok: true, version: new TextDecoder().decode(out.stdout).trim() }
      : { ok: false, reason: "python3 cannot import torch (Debian: apt-get install python3-torch)" };
  } catch (e) {
    return { ok: false, reason: `${PYTHON} not runnable: ${e instanceof Error ? e.message : String(e)}` };
  }
};

export const runTorch = async (spec: Record<string, unknown>): Promise<TorchResult> => {
  const out = await new Deno.Command(PYTHON, {
    args: [TORCH_SCRIPT, JSON.stringify(spec)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`torch bench failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return lastJsonLine(new TextDecoder().decode(out.stdout)) as TorchResult;
};

export const round = (x: number | null, digits = 1): number | null =>
  x === null ? null : Math.round(x * 10 ** digits) / 10 ** digits;
