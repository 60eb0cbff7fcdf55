"""Theorem 1 (Cloud et al. 2025), measured exactly: `python evaluate.py theorem`.

One gradient step of a student that shares the teacher's init moves it toward the teacher, whatever the data:
<dS, dT> >= 0 to first order. theory.py computes the step's quantities, named (E1)-(E5) where they are
computed (docs/theorem.md maps each equation to its lines), for any pure apply(params, x).

Reading order:
  theory.py      one step: the teacher step dT, the student step dS, their inner product, the first-order form
  models.py      the instances: a linear model, the MNIST MLP, a small transformer, and their batches
  multistep.py   many steps along a real MNIST distillation (Kitkana & Arora 2026)
  experiment.py  the checker: thousands of instances per model in float64 -> theorem.json and the plots
"""
