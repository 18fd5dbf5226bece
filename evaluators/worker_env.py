"""What a worker's environment holds: the variables its backend needs, its private directories, the
harness on its import path, and nothing that looks like a secret, whatever the evaluator's own holds."""

from __future__ import annotations

import os
from pathlib import Path

from evaluators.backends import BackendSpec

# variables a worker may inherit; everything else (API keys, tokens, cloud credentials) stays out
ENV_ALLOWLIST = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CUDA_PATH",
    "MACA_PATH",
    "TRITON_PTXAS_PATH",
    "TRITON_LIBCUDA_PATH",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "SESSION")


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def package_root() -> str:
    import evaluators

    return str(Path(evaluators.__file__).resolve().parent.parent)


def worker_environment(spec: BackendSpec | None, workdir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in ENV_ALLOWLIST if name in os.environ and not looks_secret(name)}
    env.update(
        HOME=str(workdir / "home"),
        TMPDIR=str(workdir / "tmp"),
        TRITON_CACHE_DIR=str(workdir / "triton-cache"),
        # the parent's own path entries too: a worker must import what the judge imports
        PYTHONPATH=os.pathsep.join(p for p in (package_root(), os.environ.get("PYTHONPATH", "")) if p),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONSAFEPATH="1",  # (3.11+) the worker's directory is never on its import path: nothing planted there loads
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(min(4, os.cpu_count() or 1))),
    )
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if spec is not None:
        env.update(spec.worker_env())
    return env
