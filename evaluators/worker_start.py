"""What a worker process does for itself, apart from its candidate: it keeps its memory from other
processes of its user, compiles a first Triton kernel and builds Triton's driver helpers before any
candidate exists, and lowers its own CPU limit to its request's. (Its jail ends it with its evaluator.)"""

from __future__ import annotations

import os
from typing import Any

_exit = os._exit  # captured before torch, triton or any candidate code can touch it


def keep_memory_private() -> None:
    """Make this process undumpable when the jail dropped it to an unprivileged user (it says so
    in KERNELSMITH_UNDUMPABLE): then no other process of that user, another evaluation's worker
    included, may ptrace it or read its /proc entries (memory, environment, open files). Set here,
    after the exec that made this process dumpable again. Left alone for a worker running as the
    evaluator's own user, whose evaluator may need that access (CUDA IPC)."""
    if os.environ.get("KERNELSMITH_UNDUMPABLE") != "1":
        return
    import ctypes

    pr_set_dumpable = 4
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
        _exit(71)  # a worker that cannot keep others out must not run a candidate


def limit_own_cpu(cpu_s: Any) -> None:
    """Allow this process `cpu_s` more CPU seconds from now, the hard limit 5 s above.

    A warm worker was started before its request was known, with the most CPU any request may
    have; a judge that may not lower another user's limits from outside (no CAP_SYS_RESOURCE)
    relies on this, and reads the limit back from /proc once the candidate is loaded. A process
    can lower its hard limit but never raise it again: the candidate cannot undo it.
    """
    if not isinstance(cpu_s, int) or isinstance(cpu_s, bool) or cpu_s <= 0:
        return
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    allowed = int(usage.ru_utime + usage.ru_stime) + 1 + cpu_s
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    hard = allowed + 5 if hard == resource.RLIM_INFINITY else min(hard, allowed + 5)
    soft = allowed if soft == resource.RLIM_INFINITY else min(soft, allowed, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def warm_compiler_for_gpu() -> None:
    """Triton's first compilation in this process, for the capability the judge named: CPU work only,
    before `ready`, so that none of it waits inside the evaluation of the candidate."""
    from evaluators.compat import CAPABILITY_VARIABLE, warm_compiler

    capability = os.environ.get(CAPABILITY_VARIABLE, "")
    if capability.isdigit():
        warm_compiler(int(capability))


def start_triton_driver() -> None:
    """Build Triton's driver helpers now, as the harness: a candidate that asks the driver for device
    properties at import would otherwise have Triton run the C compiler on its behalf, which the
    guards refuse."""
    try:
        from triton.runtime import driver

        driver.active.get_current_target()
        getattr(driver.active, "utils", None)
    except Exception:  # a driver without these (MetaX's fork, older Triton): its first launch builds them
        pass
