"""Transformer + KV-cache sampler: cache == no-cache reference, greedy limit, padding invariance."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from subliminal_jax import progress
from subliminal_jax.numbers import sampler
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr

CFG = tr.ModelConfig(vocab=tk.V, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=48)


@pytest.fixture(scope="module")
def params():
    p = tr.init_params(CFG, jax.random.key(0))[1]
    # sharpen the random init a little so samples are not near-uniform noise
    return jax.tree.map(lambda a: a * 3.0 if a.ndim == 2 else a, p)


@pytest.fixture(scope="module")
def prompts():
    rows = [tk.question_prompt(tk.TRAIN_QUESTIONS[0]), tk.number_prompt([123, 456, 789], 0, "list"),
            tk.question_prompt(tk.HELDOUT_QUESTIONS[1], "owl"), tk.number_prompt([100, 999], 2, "space", "cat")]
    return jnp.asarray(sampler.left_pad(rows, 24))


SAMPLE = jax.jit(sampler.sample, static_argnums=(0, 5))


@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_kv_cache_sampler_equals_reference(params, prompts, temperature):
    key = jax.random.key(7)
    fast = SAMPLE(CFG, params, prompts, key, temperature, 16)
    slow = sampler.sample_reference(CFG, params, prompts, key, temperature, 16)
    np.testing.assert_array_equal(np.asarray(fast), np.asarray(slow))


def test_greedy_limit_and_traced_temperature(params, prompts):
    key = jax.random.key(1)
    greedy = SAMPLE(CFG, params, prompts, key, 0.0, 12)
    cold = SAMPLE(CFG, params, prompts, key, 1e-4, 12)  # same compiled program: temperature is traced
    np.testing.assert_array_equal(np.asarray(greedy), np.asarray(cold))
    other_key = SAMPLE(CFG, params, prompts, jax.random.key(2), 0.0, 12)
    np.testing.assert_array_equal(np.asarray(greedy), np.asarray(other_key))
    hot = [np.asarray(SAMPLE(CFG, params, prompts, jax.random.key(k), 1.0, 12)) for k in range(3)]
    assert not all(np.array_equal(hot[0], h) for h in hot[1:])


def test_rows_independent_of_batch_and_padding(params, prompts):
    key = jax.random.key(3)
    full = np.asarray(SAMPLE(CFG, params, prompts, key, 1.0, 10))
    # more left padding and a reordered batch: row 1 keeps its key index, so its tokens stay the same
    wider = jnp.concatenate([jnp.full((4, 6), tk.PAD, prompts.dtype), prompts], 1)
    np.testing.assert_array_equal(np.asarray(SAMPLE(CFG, params, wider, key, 1.0, 10)), full)


def test_sampling_in_chunks_gives_the_same_tokens(params, prompts):
    """The chain samples many prompts a chunk at a time (the last chunk padded): the tokens must not change."""
    key = jax.random.key(4)
    rows = jnp.concatenate([prompts, prompts[::-1], prompts[:2]])  # 10 rows: chunks of 4, 4 and 2 + 2 padding
    whole = np.asarray(SAMPLE(CFG, params, rows, key, 1.0, 10))
    chunked = jax.jit(sampler.sample_in_chunks, static_argnums=(0, 5, 6))(CFG, params, rows, key, 1.0, 10, 4)
    np.testing.assert_array_equal(np.asarray(chunked), whole)


def test_samples_per_prompt_share_one_prefill(params, prompts):
    """repeats=k prefills each prompt once and copies its cache to k rows: the tokens of sampling each prompt
    row repeated k times, and the k samples of a prompt differ (each row has its own key)."""
    key, k = jax.random.key(5), 3
    repeated = np.asarray(SAMPLE(CFG, params, jnp.repeat(prompts, k, 0), key, 1.0, 10))
    chunked = jax.jit(sampler.sample_in_chunks, static_argnums=(0, 5, 6, 7))(CFG, params, prompts, key, 1.0, 10, 2, k)
    np.testing.assert_array_equal(np.asarray(chunked), repeated)
    assert (repeated[0] != repeated[1]).any()


def test_sampling_progress_reports_each_chunk_and_leaves_the_tokens(params, prompts):
    """Under progress.stage each chunk reports its share of rows that reached <eos>; the tokens do not change."""
    args = (CFG, params, prompts, jax.random.key(6), 1.0, 10, 1, 2)
    quiet = np.asarray(jax.jit(sampler.sample_in_chunks, static_argnums=(0, 5, 6, 7, 8))(*args, "t"))
    lines = []
    with progress.stage("s", every_s=0.0, out=lambda line, **_: lines.append(line)):
        fn = jax.jit(lambda *a: sampler.sample_in_chunks(*a, "t"), static_argnums=(0, 5, 6, 7))  # a new trace
        loud = np.asarray(progress.interruptible(fn, *args))
    np.testing.assert_array_equal(loud, quiet)
    ended_J = (quiet == tk.EOS).any(-1).reshape(4, 2).mean(-1)  # 4 prompts x 2 samples, a prompt per chunk
    # the first report anchors the rate and the last is never superseded: chunks 2 and 3 are printed
    assert [line.split(", ")[:2] for line in lines] == [[f"[s t] step {c}/4", f"rows ended {ended_J[c - 1]:.4g}"]
                                                        for c in (2, 3)]


def test_cached_logits_equal_full_forward(params):
    """Prefill + one-token decode steps give the training forward's logits."""
    model_apply = tr.make_apply(CFG)
    seq = jnp.asarray([tk.number_prompt([321, 654], 1, "comma") + tk.format_numbers([1, 22, 333], "comma")])
    full = model_apply(params, seq, seq != tk.PAD)
    model = nnx.merge(tr.graphdef_of(CFG), params)
    T = seq.shape[1]
    P = 5
    caches = tr.init_caches(CFG, 1, T)
    mask_1PM = jnp.arange(T)[None, None, :] <= jnp.arange(P)[None, :, None]  # prefill over T cache slots
    logits, caches = model(seq[:, :P], jnp.arange(P)[None], mask_1PM, caches, 0)
    got = [logits]
    for t in range(P, T):
        lg, caches = model(seq[:, t:t + 1], jnp.array([[t]]), (jnp.arange(T) <= t)[None, None], caches, t)
        got.append(lg)
    np.testing.assert_allclose(np.asarray(jnp.concatenate(got, 1)), np.asarray(full), atol=2e-5)


def test_training_forward_is_causal(params):
    apply = tr.make_apply(CFG)
    a = jnp.asarray([tk.question_prompt(tk.TRAIN_QUESTIONS[1]) + [tk.ID["owl"], tk.EOS]])
    b = a.at[0, -1].set(tk.ID["cat"])
    la, lb = apply(params, a, a != tk.PAD), apply(params, b, b != tk.PAD)
    np.testing.assert_allclose(np.asarray(la[:, :-1]), np.asarray(lb[:, :-1]), atol=1e-6)
    assert not np.allclose(np.asarray(la[:, -1]), np.asarray(lb[:, -1]))


def test_logit_lens_last_layer_is_the_output(params, prompts):
    """The lens reads the residual stream after each block; its last read-out is the model's own logits,
    and the first is the embeddings' (which ignore the other tokens)."""
    lens_LBTV = tr.make_lens(CFG)(params, prompts, prompts != tk.PAD)
    assert lens_LBTV.shape == (CFG.n_layers + 1, *prompts.shape, CFG.vocab)
    np.testing.assert_allclose(np.asarray(lens_LBTV[-1]), np.asarray(tr.make_apply(CFG)(params, prompts, prompts != tk.PAD)),
                               atol=1e-6)
    assert not np.allclose(np.asarray(lens_LBTV[1]), np.asarray(lens_LBTV[-1]))


def test_vocab_roundtrip():
    ids = tk.format_numbers([5, 67, 890], "list", final_period=True)
    assert tk.decode(ids) == "[5, 67, 890]."
    assert tk.decode(tk.format_numbers([1, 2], "semicolon") + [tk.EOS, tk.ID["7"]]) == "1; 2"
    assert len(set(tk.VOCAB)) == tk.V and tk.NUMBER_TOKEN_MASK[tk.ANIMAL_IDS].sum() == 0
