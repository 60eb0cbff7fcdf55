"""One mesh over all devices; seeds (or batch rows) are split along its one axis.

JAX 0.10 has no pmap: "pmapped training" here is jax.jit over a mesh with
NamedSharding. The same code runs on 1 CPU or 8 TPU cores; tests fake 4 CPU
devices with jax.config.update('jax_num_cpu_devices', 4).
"""
from __future__ import annotations

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from subliminal_jax.errors import UserError

AXIS = "devices"


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    n = num_devices or jax.device_count()
    if n > jax.device_count():
        raise UserError(f"--num-devices {n}: only {jax.device_count()} devices present")
    return jax.make_mesh((n,), (AXIS,), axis_types=(AxisType.Auto,), devices=jax.devices()[:n])


def check_divisible(count: int, mesh: jax.sharding.Mesh, what: str = "--num-seeds") -> None:
    n = mesh.devices.size
    if count % n:
        lo, hi = count - count % n, count + n - count % n
        raise UserError(f"{what} {count} is not divisible by the {n} devices; "
                        f"use {lo or hi} or {hi} (or fewer devices with --num-devices)")


def split_leading(mesh, tree):
    """Place every array of `tree` with its leading axis split over the devices."""
    return jax.device_put(tree, NamedSharding(mesh, P(AXIS)))


def replicate(mesh, tree):
    """Place every array of `tree` whole on every device."""
    return jax.device_put(tree, NamedSharding(mesh, P()))
