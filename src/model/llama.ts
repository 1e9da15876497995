/**
 * The model's entry points under their original module name: every architecture (Llama, Mistral, Qwen2,
 * Qwen3, GPT-2) goes through ./model.ts, which dispatches on the config. Kept so existing imports work.
 */
export * from "./model.ts";
