/**
 * SFTKey — "Key-part supervised fine-tuning" (arXiv 2512.21017).
 *
 * Stage one is ordinary SFT on the whole response, chain of thought and answer, so the model learns the
 * output format. Stage two continues from stage one with the loss on the key span only (the final
 * answer tokens), which is where the accuracy gain comes from. Both stages are evaluated.
 */
import { PipelineBuilder } from "../src/engine/pipeline.ts";
import { budget, type Data, evaluate, type PipelineOptions, prepareData, train } from "./common.ts";
import { addSft } from "./sft.ts";

export const addSftKey = (p: PipelineBuilder, data: Data) => {
  const b = budget(data);
  // Stage one: every response token (thinking and answer) carries weight 1.
  const stageOne = train(p, "sftkey-stage-one", data, { kind: "response" }, data.base, {
    ...b.train,
    steps: b.stageOneSteps,
  });
  // Stage two: from stage one, loss on the key part only: the tokens after the thinking part
  // (`<Answer>...</Answer>` and EOS in the tag format; the `#### ` line in GSM8K).
  const stageTwo = train(p, "sftkey-stage-two", data, { kind: "answer" }, stageOne, {
    ...b.train,
    steps: b.stageTwoSteps,
    lr: b.stageTwoLr,
    warmupSteps: 0,
  });
  evaluate(p, "sftkey-stage-one", stageOne, data);
  evaluate(p, "sftkey-stage-two", stageTwo, data);
  return { stageOne, stageTwo };
};

/** The default pipeline: SFTKey and, for comparison, plain SFT with the same number of optimizer steps. */
export const build = (opts: PipelineOptions = {}) => {
  const p = new PipelineBuilder(
    "sftkey",
    "SFTKey (stage one: whole response; stage two: key only) vs plain SFT",
  );
  const data = prepareData(p, opts);
  addSftKey(p, data);
  addSft(p, data);
  return p.build();
};
