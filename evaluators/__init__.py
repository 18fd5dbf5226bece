"""The evaluation service: protocol, static checks, harness, backends, sandboxes, REST app, client.

Deployed alone on GPU hosts: nothing here imports `archive` or `kernelsmith`. Imports stay lazy
so that the sandbox launcher starts without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluators.judge import Judge
    from evaluators.protocol import EvalRequest, EvalResult

__all__ = ["EvalRequest", "EvalResult", "Judge", "evaluate"]


def evaluate(request: EvalRequest, device_index: int | None = None) -> EvalResult:
    """Evaluate one request here, in a fresh judge (no reference cache kept between calls)."""
    from evaluators.judge import Judge

    return Judge.for_backend(request.backend, device_index).evaluate(request)


def __getattr__(name: str) -> Any:
    if name in ("EvalRequest", "EvalResult"):
        from evaluators import protocol

        return getattr(protocol, name)
    if name == "Judge":
        from evaluators.judge import Judge

        return Judge
    raise AttributeError(name)
