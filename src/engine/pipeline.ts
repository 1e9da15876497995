/**
 * A pipeline is a declarative value: named nodes, each a source file/directory or a step applied to a
 * config and to other nodes' outputs. Pipeline files (pipelines/*.ts) build one with `PipelineBuilder`,
 * so they read like the method they implement; the runner (runner.ts) executes it.
 */
import { ParseResult, Schema } from "effect";
import { PipelineInvalid } from "../errors.ts";
import type { AnyStep, Step } from "./step.ts";

/**
 * A config that does not decode, as `path: message` for its first few issues ("lr: Expected a positive
 * number, actual -0.001"), on one line: effect's own message is a multi-line tree of the whole schema.
 */
export const describeConfigIssues = (error: ParseResult.ParseError): { path: string; reason: string } => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error);
  const first = issues[0];
  const path = (first?.path ?? []).map(String).join(".");
  const one = (i: (typeof issues)[number]) =>
    `${i.path.length ? `${i.path.map(String).join(".")}: ` : ""}${i.message.replaceAll("\n", " ")}`;
  const reason = issues.slice(0, 3).map(one).join("; ") +
    (issues.length > 3 ? `; and ${issues.length - 3} more` : "");
  return { path, reason: reason || error.message.split("\n")[0] };
};

/** A handle on a node's output, used to wire it into later steps. */
export interface NodeRef {
  /** The node's name in its pipeline. */
  readonly node: string;
}

/** A node whose output is a file or directory the user gave (data, tokenizer, checkpoint). */
export interface SourceNode {
  /** Tells sources from steps. */
  readonly kind: "source";
  /** The node's name, unique in its pipeline. */
  readonly name: string;
  /** A file or a directory (e.g. a Hugging Face checkpoint); its bytes are part of downstream keys. */
  readonly path: string;
  /**
   * For a file: names of files beside it that its reader also reads when present (a tokenizer.json's
   * tokenizer_config.json, ...); their bytes go into the digest too, so editing one invalidates the cache.
   */
  readonly companions?: ReadonlyArray<string>;
}

/** A node that runs a step on its inputs' outputs. */
export interface StepNode {
  /** Tells sources from steps. */
  readonly kind: "step";
  /** The node's name, unique in its pipeline. */
  readonly name: string;
  /** What it runs. */
  readonly step: AnyStep;
  /** The config in its encoded (JSON) form: what goes into the cache key. */
  readonly config: unknown;
  /** Input name -> the name of the node whose output it reads. */
  readonly inputs: Readonly<Record<string, string>>;
}

/** A node of a pipeline. */
export type PipelineNode = SourceNode | StepNode;

/** A declarative pipeline: named nodes wired to each other's outputs. Build one with PipelineBuilder. */
export interface Pipeline {
  /** Shown in status and summaries. */
  readonly name: string;
  /** One line on what it does. */
  readonly description: string;
  /** Nodes in an order where every node comes after its inputs. */
  readonly nodes: ReadonlyArray<PipelineNode>;
  /**
   * What the pipeline decided while it was built, by name (e.g. which budget applied and why): printed in
   * the run's header and kept in summary.json, so a reader need not reconstruct it from node configs.
   */
  readonly settings?: Readonly<Record<string, string>>;
}

/** A step's inputs wired to nodes; unconnected optional inputs are left out. */
export type Inputs<I extends string> = { readonly [K in I]?: NodeRef };

/** Adds sources and steps one by one and checks the whole when built (names, wiring, configs). */
export class PipelineBuilder {
  private readonly nodes: PipelineNode[] = [];
  private readonly problems: string[] = [];
  private readonly settings: Record<string, string> = {};

  /** A builder for a pipeline named `name`. */
  constructor(readonly name: string, readonly description = "") {}

  /** Records a problem when `name` is already taken. */
  private claim(name: string) {
    if (this.nodes.some((n) => n.name === name)) this.problems.push(`node "${name}" is defined twice`);
  }

  /** A data file, tokenizer or checkpoint directory the pipeline reads (see SourceNode for companions). */
  source(name: string, path: string, opts: { companions?: ReadonlyArray<string> } = {}): NodeRef {
    this.claim(name);
    this.nodes.push({
      kind: "source",
      name,
      path,
      ...(opts.companions ? { companions: opts.companions } : {}),
    });
    return { node: name };
  }

  /** Applies `step` to `config` and the outputs of earlier nodes. */
  add<C, I extends string, E>(
    name: string,
    step: Step<C, I, E>,
    config: NoInfer<C>,
    inputs: Inputs<I>,
  ): NodeRef {
    this.claim(name);
    const wired: Record<string, string> = {};
    for (const [k, ref] of Object.entries(inputs) as Array<[string, NodeRef | undefined]>) {
      if (ref === undefined) continue;
      if (!(step.inputs as ReadonlyArray<string>).includes(k)) {
        this.problems.push(`node "${name}": step "${step.name}" has no input "${k}"`);
      }
      wired[k] = ref.node;
    }
    for (const k of step.inputs) {
      if (!(k in wired) && !(step.optionalInputs ?? []).includes(k)) {
        this.problems.push(`node "${name}": input "${k}" of step "${step.name}" is not connected`);
      }
    }
    // Unknown fields are errors: encoding would otherwise drop them, and a misspelt option would
    // silently keep its default.
    const result = Schema.encodeEither(step.config, { onExcessProperty: "error", errors: "all" })(config);
    const encoded: unknown = result._tag === "Right" ? result.right : undefined;
    if (result._tag === "Left") {
      const { reason } = describeConfigIssues(result.left);
      this.problems.push(`node "${name}": config does not match step "${step.name}": ${reason}`);
    }
    this.nodes.push({ kind: "step", name, step, config: encoded, inputs: wired });
    return { node: name };
  }

  /** Records a build-time decision under `name` (the last value given wins). */
  setting(name: string, value: string): void {
    this.settings[name] = value;
  }

  /** The pipeline, or a thrown PipelineInvalid naming every problem found while adding nodes. */
  build(): Pipeline {
    return validate(
      {
        name: this.name,
        description: this.description,
        nodes: [...this.nodes],
        ...(Object.keys(this.settings).length > 0 ? { settings: { ...this.settings } } : {}),
      },
      this.problems,
    );
  }
}

/** Checks names, wiring and acyclicity, and orders nodes so that inputs come first. */
export const validate = (p: Pipeline, problems: string[] = []): Pipeline => {
  const byName = new Map(p.nodes.map((n) => [n.name, n]));
  for (const n of p.nodes) {
    if (n.kind !== "step") continue;
    for (const [k, from] of Object.entries(n.inputs)) {
      if (!byName.has(from)) problems.push(`node "${n.name}": input "${k}" refers to unknown node "${from}"`);
    }
  }
  const order: PipelineNode[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (n: PipelineNode, path: string[]) => {
    const s = state.get(n.name);
    if (s === "done") return;
    if (s === "visiting") {
      problems.push(`cycle: ${[...path, n.name].join(" -> ")}`);
      return;
    }
    state.set(n.name, "visiting");
    if (n.kind === "step") {
      for (const from of Object.values(n.inputs)) {
        const dep = byName.get(from);
        if (dep) visit(dep, [...path, n.name]);
      }
    }
    state.set(n.name, "done");
    order.push(n);
  };
  for (const n of p.nodes) visit(n, []);
  if (problems.length > 0) throw new PipelineInvalid({ pipeline: p.name, reason: problems.join("; ") });
  return { ...p, nodes: order };
};
