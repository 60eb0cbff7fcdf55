"""One-device reference runs that several test files compare against (each costs 10-30 s): run once per
session, read only (a test that changes one copies it first)."""
import pytest

from helpers import run_script


@pytest.fixture(scope="session")
def mnist_one_device(tmp_path_factory):
    """The out-dir of `train.py mnist` (test_mnist.TINY_FLAGS, 4 seeds) on 1 device."""
    from test_mnist import TINY_FLAGS
    out = tmp_path_factory.mktemp("mnist_one_device")
    r = run_script("train.py", "mnist", *TINY_FLAGS, "--num-seeds", "4", "--out-dir", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def numbers_stage_by_stage(tmp_path_factory):
    """The out-dir of the tiny chain (test_numbers.TINY_FLAGS) run stage by stage through the three CLIs on
    1 device."""
    from test_numbers import TINY_FLAGS
    out = tmp_path_factory.mktemp("numbers_stage_by_stage")
    for script, extra in (("train.py", ["--stage", "base"]), ("train.py", ["--stage", "teacher"]),
                          ("generate.py", []), ("train.py", ["--stage", "students"]), ("evaluate.py", [])):
        r = run_script(script, "numbers", *TINY_FLAGS, "--out-dir", str(out), *extra)
        assert r.returncode == 0, (script, extra, r.stderr[-2000:])
    return out
