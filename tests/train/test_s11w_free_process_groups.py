"""free_process_groups(), run by `steel.cli` at the end of every command that joined a process group, walks every
object on the heap: it must neither warn nor raise for objects that are not DeviceMeshes, and must still clear
the process-group registry of the DeviceMeshes it finds.

It tested each object with isinstance(obj, DeviceMesh), whose metaclass (torch's OpaqueBaseMeta) reads
obj.__class__ in Python: torch.distributed's deprecated `reduce_op` object printed two FutureWarnings on every
rank at the end of each torchrun run, and an object whose __class__ raises turned a finished command into a
traceback (the call is in main()'s `finally`).
"""

from __future__ import annotations

import warnings

import pytest

dm = pytest.importorskip("torch.distributed.device_mesh")

from steel.train.distributed import free_process_groups  # noqa: E402


class _ClassRaises:
    @property
    def __class__(self):  # a proxy whose __class__ fails, as lazy proxies' can
        raise RuntimeError("__class__ looked up")


def test_no_warning_no_error_and_meshes_cleared():
    import torch.distributed  # noqa: F401  (its deprecated reduce_op object is on the heap)

    trap = _ClassRaises()
    mesh = object.__new__(dm.DeviceMesh)  # a mesh without a process group: only its registry matters here
    mesh._pg_registry = {"g0": object(), "g1": object()}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        free_process_groups()
    assert [str(w.message) for w in seen] == []
    assert mesh._pg_registry == {}
    del trap
