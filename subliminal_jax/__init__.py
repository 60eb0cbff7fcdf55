"""subliminal-jax: subliminal learning (Cloud et al. 2025) from scratch in JAX/Flax NNX."""
