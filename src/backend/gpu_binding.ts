/**
 * Where @tensorflow/tfjs-node-gpu's native binding is, if its install script ever ran (it downloads
 * libtensorflow, so on our machines it has not). Used by the backend choice (backend.ts) and by the
 * launcher, which grants FFI to exactly this file (src/cli/launch.ts); a module of its own so the launcher
 * loads no npm package.
 */
export const nodeGpuBinding = (): string | undefined => {
  const base = new URL("../../node_modules/@tensorflow/tfjs-node-gpu/lib/", import.meta.url);
  try {
    for (const entry of Deno.readDirSync(base)) {
      const candidate = new URL(`${entry.name}/tfjs_binding.node`, base);
      try {
        Deno.statSync(candidate);
        return candidate.pathname;
      } catch { /* not in this folder */ }
    }
  } catch { /* package not installed */ }
  return undefined;
};
