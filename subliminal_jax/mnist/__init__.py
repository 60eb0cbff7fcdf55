"""The MNIST auxiliary-logit experiment (Cloud et al. 2025, section 6): `python train.py mnist`.

Pipeline, per seed, all seeds in one compiled program (experiment.py):
  theta0 = a fresh MLP init  ->  teacher: theta0 trained on the digit classes (class cross-entropy)
  students from theta0 (or another seed's init: cross_*) distil the teacher's AUXILIARY logits on noise
  images, never seeing a digit or a class logit  ->  their digit accuracy is the transfer.

Reading order:
  data.py        MNIST / Fashion-MNIST IDX files: download, verify, cache, the embedded 5k subset
  mlp.py         the 784-256-256-(10+m) MLP (Flax NNX) and its pure apply(params, x)
  experiment.py  the config, the per-seed pure parts (make_parts), the vmapped program, run, the sweeps
"""
