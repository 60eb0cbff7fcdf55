"""One mesh over all devices; seeds (or batch rows) are split along its one axis.

JAX 0.10 has no pmap: "pmapped training" here is jax.jit over a mesh with
NamedSharding. The same code runs on 1 CPU or 8 TPU cores; tests fake 4 CPU
devices with jax.config.update('jax_num_cpu_devices', 4). With several processes
(multihost.py) the mesh spans every process's devices.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from subliminal_jax.errors import UserError

AXIS = "devices"


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    n = num_devices or jax.device_count()
    if jax.process_count() > 1 and n != jax.device_count():  # (a part of the devices could leave a process none)
        raise UserError(f"--num-devices {n}: a run of {jax.process_count()} processes uses all "
                        f"{jax.device_count()} devices; leave --num-devices out")
    if n > jax.device_count():
        raise UserError(f"--num-devices {n}: only {jax.device_count()} devices present")
    return jax.make_mesh((n,), (AXIS,), axis_types=(AxisType.Auto,), devices=jax.devices()[:n])


def check_divisible(count: int, mesh: jax.sharding.Mesh, what: str = "--num-seeds") -> None:
    n = mesh.devices.size
    if count % n:
        lo, hi = count - count % n, count + n - count % n
        fewer = " (or fewer devices with --num-devices)" if jax.process_count() == 1 else ""
        raise UserError(f"{what} {count} is not divisible by the {n} devices; use {lo or hi} or {hi}{fewer}")


def _put(tree, sharding):
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    # Across processes each one places only its own devices' slices of the (identical) host value: device_put
    # refuses a device array onto other processes' devices and would all-gather host data to compare it.
    def one(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        x = np.asarray(x, dtype=jax.dtypes.canonicalize_dtype(np.asarray(x).dtype))
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.tree.map(one, tree)


def split_leading(mesh, tree):
    """Place every array of `tree` with its leading axis split over the devices."""
    return _put(tree, NamedSharding(mesh, P(AXIS)))


def replicate(mesh, tree):
    """Place every array of `tree` whole on every device."""
    return _put(tree, NamedSharding(mesh, P()))
