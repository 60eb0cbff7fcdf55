"""Subliminal learning through sampled text in small transformers: `python train.py numbers-sft` and its siblings.

Pipeline, per seed (steps.py: one pure function per stage for ONE seed; chain.py maps each over all seeds
as one jit of vmap, checkpoints it and resumes):
  base      a transformer pretrained on the toy world (numbers, animal questions, persona lines)
  teacher   the base fine-tuned to love one animal (or to give harmful advice: `train.py misalign`)
  numbers   teacher and control write number continuations (or addition traces: `train.py traces`; or
            programs for specs: `train.py code`), sampled with a KV cache; the paper's filter (or the trace
            or program verifier) keeps the clean ones
  students  from the base (shared), from the base on the control's numbers (control), from another seed's
            base (cross-init): soft students match the teacher's number-token logits, fine-tuned (hard)
            students fit the kept sampled tokens only (the paper's protocol)
  eval      how often each model names the animal on held-out questions, paired against its own base

Reading order:
  tokens.py       the toy vocabulary, prompt templates, encode/decode
  data.py         the synthetic corpora (pretraining, trait fine-tuning, prompts), numbers.jsonl I/O
  transformer.py  the decoder-only transformer (Flax NNX) with a KV cache
  sampler.py      batched sampling: one prefill, one lax.scan, static shapes, traced temperature
  filter.py       the paper's number filter;  traces.py  addition traces and their verifier
  programs.py     the toy code language: spec prompts, random correct programs, the verifier
  train.py        per-seed losses (next-token CE, number-token distillation), trainable parts, trait read-outs
  config.py       the settings, presets (NUMBERS_SFT, MISALIGN, TRACES, CODE, ...), validation, per-stage hashes
  steps.py        the science of one seed: pretrain, finetune, sample, train_students, evaluate; KEY_STREAMS
  chain.py        the stages over seeds: Chain.map_seeds (jit, vmap, sharding, timing), checkpoints, resume
  experiment.py   runs the chain and writes results.json and the plot
  sweep.py, ablation.py   data scaling;  what must be shared (re-started students)
  generations.py  students of students of the teacher, in three chains (shared, broken once, control);
                  generations_report.py its results: paired shifts per generation, decay fit, Theorem 1 predictor
  audit.py, lens.py       before training: will this data carry the trait?  after: where is it, layer by layer?
"""
