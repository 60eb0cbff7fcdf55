"""subliminal-jax: subliminal learning (Cloud et al. 2025) from scratch in JAX/Flax NNX.

Three experiments, one subpackage each, whose __init__ gives its pipeline and the reading order of its files:
theorem/ (Theorem 1 measured exactly), mnist/ (the auxiliary-logit toy), numbers/ (transformers and sampled
text). Shared science: seeds (keys, the cross-init pairing), losses, training (the optimizer loop), inits (the
student's init against the teacher's). Shared plumbing: parallel, multihost, checkpoint, progress, stats,
report, plots, cli, checks, errors.

Shape suffixes: a name ends in one capital per axis of its array, in order (tokens_BT is [B, T]; class_ce_B
returns [B]; a vmapped function carries the axes it maps over, acc_SC). Capitals mean nothing else.
A: answer tokens of the trait's class (animals, or advice answers), B: batch rows, C: conditions compared
within a seed (the students), D: features (pixels, d_model), E: eps values of the teacher step, G: generated
tokens of a completion, H: attention heads, I: Theorem 1 instances, J: chunks of the sampler's lax.map,
K: classes (a classifier's logits, a count table's columns), L: layers read by the logit lens, M: KV-cache
slots a query attends to, N: examples (rows of a dataset, corpus or prompt set), P: prompt positions,
Q: questions, R: sampled rows (prompts x repeats), S: seeds, T: positions in a sequence, U: optimizer
updates (steps), V: vocabulary, W: width of one attention head (D / H), Y: epochs, Z: persona groups.
A digit is an axis of that size: 2 = the two data sources (0 teacher, 1 control), 1 = a length-1 axis.

Roles are words, never capitals: theta_student, theta_teacher, teacher_loss, L_trait, g_distill, g_class.
One exception, Theorem 1's own notation: dS and dT, the student's and the teacher's one-step parameter
changes (no underscore, so never read as a suffix). Units are lowercase (compile_s: seconds); ALL-CAPS
constants carry no shape suffix (EVERY_S, SUBLIMINAL_JAX_INIT_TIMEOUT_S).
"""
