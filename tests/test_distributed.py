"""Two processes on one machine (jax.distributed: a localhost coordinator, gloo's CPU collectives) give the
results of one process; only process 0 prints and writes; resume works; bad settings are one line.
The one-process references are conftest.py's, shared with the 1-vs-4-device tests."""
import json
import shutil
import socket

import numpy as np
import pytest

from subliminal_jax import cli, multihost
from subliminal_jax.mnist import experiment as mnist
from subliminal_jax.numbers import experiment as nb
from helpers import free_port, run_processes, run_script
from test_mnist import TINY_FLAGS as MNIST_FLAGS
from test_numbers import TINY_FLAGS as NUMBERS_FLAGS


def check_ran(results):
    for i, r in enumerate(results):
        assert r.returncode == 0, (i, r.stderr[-2000:])
    assert "wrote" in results[0].stdout and results[1].stdout == ""  # process 1's stdout goes to /dev/null


def test_mnist_on_two_processes_matches_one(mnist_one_device, tmp_path):
    check_ran(run_processes("train.py", "mnist", *MNIST_FLAGS, "--num-seeds", "4", "--out-dir", str(tmp_path),
                            processes=2, devices=1))
    a, b = (json.loads((d / "results.json").read_text()) for d in (mnist_one_device, tmp_path))
    assert (a["processes"], b["processes"], len(b["devices"])) == (1, 2, 2)
    for c in mnist.CONDITIONS:  # as 1 vs 4 devices: a layout's rounding may flip one test example (0.001)
        np.testing.assert_allclose(b["conditions"][c]["values"], a["conditions"][c]["values"], atol=0.0011,
                                   err_msg=c)
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000


def test_numbers_chain_on_two_processes_matches_one_and_resumes(numbers_stage_by_stage, tmp_path):
    """2 processes x 2 fake devices: one global mesh of 4 that the 4 seeds are split over. The run starts with
    the one-process run's base checkpoint in its --out-dir: both processes must find and restore it (resume);
    teacher, numbers, students and eval are computed on the 2 processes (the MNIST test trains from scratch)."""
    one = numbers_stage_by_stage
    shutil.copytree(one / "checkpoints" / "base", tmp_path / "checkpoints" / "base")
    out = run_processes("train.py", "numbers", *NUMBERS_FLAGS, "--out-dir", str(tmp_path), processes=2, devices=2)
    check_ran(out)
    assert "[base] reusing checkpoint" in out[0].stdout
    a, b = (json.loads((d / "results.json").read_text()) for d in (one, tmp_path))
    assert (b["processes"], len(b["devices"])) == (2, 4)
    assert set(b["stage_time_s"]) == {"teacher", "numbers", "students", "eval"}
    rows = lambda d: [json.loads(x) for x in (d / "numbers.jsonl").read_text().splitlines()[1:]]
    assert rows(one) == rows(tmp_path)  # the same samples token for token
    for c in nb.CONDITIONS:  # the tolerance of 1 vs 4 devices (test_numbers.py: SGD students)
        np.testing.assert_allclose(b["conditions"][c]["target_prob"]["values"],
                                   a["conditions"][c]["target_prob"]["values"], rtol=1e-4, err_msg=c)
    assert not list((tmp_path / "checkpoints").glob("*/0/params/ocdbt.process_1"))  # process 0 wrote the arrays
    assert list((tmp_path / "checkpoints").glob("students/0/params/ocdbt.process_0"))


def test_bad_settings_are_one_line(monkeypatch, capsys):
    """Refused before jax.distributed starts (so here, in-process): an incomplete or contradictory set of
    variables, and a coordinator port already taken (XLA would crash with SIGSEGV)."""
    ran = []
    commands = {"mnist": (mnist.MnistConfig(), ran.append, "")}
    full = {"JAX_COORDINATOR_ADDRESS": f"localhost:{free_port()}", "JAX_NUM_PROCESSES": "2"}
    with socket.socket() as busy:
        busy.bind(("localhost", 0))
        busy.listen()
        taken = f"localhost:{busy.getsockname()[1]}"
        for env, flag, message in [
                ({"JAX_NUM_PROCESSES": "2"}, True, "JAX_COORDINATOR_ADDRESS, JAX_PROCESS_ID not set"),
                ({**full, "JAX_PROCESS_ID": "0"}, False, "--distributed not given"),
                ({**full, "JAX_PROCESS_ID": "2"}, True, "0 <= JAX_PROCESS_ID < JAX_NUM_PROCESSES"),
                ({**full, "JAX_PROCESS_ID": "0", "JAX_COORDINATOR_ADDRESS": taken}, True, "cannot serve the coordinator")]:
            for k in multihost.ENV:
                monkeypatch.delenv(k, raising=False)
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            with pytest.raises(SystemExit) as e:
                cli.main(commands, "", ["mnist", *(["--distributed"] if flag else [])])
            err = capsys.readouterr().err
            assert e.value.code == 2 and err.count("\n") == 1 and message in err, (env, err)
    assert not ran


def test_unreachable_coordinator_is_one_line(tmp_path):
    """Process 1 alone: nobody serves the coordinator. JAX itself would abort after its timeout (a C++ fatal
    log and a stack trace); the wait ends with one line instead."""
    env = {"JAX_COORDINATOR_ADDRESS": f"localhost:{free_port()}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1",
           "SUBLIMINAL_JAX_INIT_TIMEOUT_S": "2"}
    r = run_script("train.py", "mnist", *MNIST_FLAGS, "--out-dir", str(tmp_path), "--distributed", env=env)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr[-2000:]
    assert "not all processes connected to the coordinator" in r.stderr
