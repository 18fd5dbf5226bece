"""The launch counter's wrapper on Triton's launcher class, through which compiled launches pass.

Compiled mode needs a GPU, so a stand-in JITFunction and launcher play Triton's parts here: the
JITFunction asks the driver for the current stream and hands it to the launcher, as `kernel[grid]`
does; a CompiledKernel launched directly calls the launcher alone, with whatever stream it is given.
"""

from __future__ import annotations

import inspect

import pytest

from evaluators import compat
from evaluators.compat import LaunchCounter, warm_compiler

TIMED, SIDE = 7, 8


class StandInDriver:
    """Triton's driver object: a candidate can replace its stream getter."""

    def __init__(self) -> None:
        self.current = TIMED
        self.get_current_stream = lambda: self.current


class StandInLauncher:
    """Triton's launcher class: `launcher(gridX, gridY, gridZ, stream, function, *args)`."""

    streams: list[int] = []

    def __call__(self, grid_x, grid_y, grid_z, stream, function, *args):
        StandInLauncher.streams.append(stream)


class StandInJITFunction:
    """What `kernel[grid](...)` resolves to: `run` reads the driver's current stream and launches."""

    driver = StandInDriver()

    def __init__(self) -> None:
        self.launcher = StandInLauncher()
        self.fn = lambda: None
        self.fn.__name__ = "add_one"

    def run(self, *args, grid, warmup):
        if not warmup:
            self.launcher(grid[0], 1, 1, self.driver.get_current_stream(), "function", *args)


@pytest.fixture
def counter(monkeypatch):
    """A counter installed on the stand-ins, holding launches to TIMED as while timing."""
    monkeypatch.setattr(compat, "_launch_entry_points", lambda: [(StandInJITFunction, "run")])
    monkeypatch.setattr(compat, "_launcher_entry_point", lambda: (StandInLauncher, "__call__"))
    monkeypatch.setattr(StandInJITFunction, "run", StandInJITFunction.run)
    monkeypatch.setattr(StandInLauncher, "__call__", StandInLauncher.__call__)
    StandInJITFunction.driver = StandInDriver()
    StandInLauncher.streams = []
    counter = LaunchCounter()
    counter.install()
    current = StandInJITFunction.driver
    counter.watch_stream(TIMED, lambda: current.current)  # the harness's own reading of the current stream
    return counter


def test_a_kernel_grid_launch_is_counted_once_though_it_passes_the_launcher_too(counter):
    kernel = StandInJITFunction()
    kernel.run(1, grid=(4,), warmup=False)
    kernel.run(1, grid=(4,), warmup=True)  # compiles only: no launch
    assert counter.count == 1 and counter.kernels == {"add_one": 1}
    assert StandInLauncher.streams == [TIMED] and counter.off_stream == 0


def test_a_compiled_kernel_launched_directly_is_counted(counter):
    StandInLauncher()(4, 1, 1, TIMED, "function", 1)  # compiled.run(...) / compiled[grid](...)
    assert counter.count == 1 and counter.off_stream == 0


def test_a_compiled_kernel_launched_on_a_side_stream_is_caught_by_its_stream_argument(counter):
    StandInLauncher()(4, 1, 1, SIDE, "function", 1)  # compiled[grid](..., stream=side)
    assert counter.off_stream == 1


def test_a_replaced_stream_getter_on_the_driver_does_not_hide_a_side_stream_launch(counter):
    # the harness still reads TIMED as current; Triton's own getter now says SIDE
    StandInJITFunction.driver.get_current_stream = lambda: SIDE
    StandInJITFunction().run(1, grid=(4,), warmup=False)
    assert StandInLauncher.streams == [SIDE] and counter.off_stream == 1 and counter.count == 1


def test_a_launch_while_another_stream_is_current_counts_as_one_off_the_stream(counter):
    StandInJITFunction.driver.current = SIDE  # seen by the harness's reading and by the launcher both
    StandInJITFunction().run(1, grid=(4,), warmup=False)
    assert counter.off_stream == 1


def test_a_stream_that_claims_to_equal_the_timed_one_is_judged_by_its_value(counter):
    class Liar(int):
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

    StandInLauncher()(4, 1, 1, Liar(SIDE), "function", 1)
    assert counter.off_stream == 1


def test_launches_are_not_held_to_a_stream_outside_the_timed_calls(counter):
    counter.watch_stream(None)
    StandInLauncher()(4, 1, 1, SIDE, "function", 1)
    assert counter.off_stream == 0 and counter.count == 1


def test_restoring_the_launchers_own_call_is_seen(counter):
    assert counter.intact()
    StandInLauncher.__call__ = StandInLauncher.__call__.__wrapped__  # what a candidate undoing the wrapper does
    assert not counter.intact()


def test_this_tritons_launchers_take_the_stream_fourth():
    """The wrapper reads the stream from the launcher's fourth argument: a Triton that moved it would
    leave compiled launches on a side stream unseen."""
    from triton.backends.nvidia.driver import CudaLauncher

    parameters = list(inspect.signature(CudaLauncher.__call__).parameters.values())
    if [p.name for p in parameters[1:5]] != ["gridX", "gridY", "gridZ", "stream"]:
        # Triton 3.0 (and MetaX's fork): __call__(self, *args, **kwargs), which CompiledKernel and
        # JITFunction.run call as launcher(gridX, gridY, gridZ, stream, function, ...)
        kinds = [p.kind for p in parameters[1:]]
        assert kinds == [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]


class StandInTorchC:
    """torch._C's stream setter: what torch.cuda.set_stream and `with torch.cuda.stream(s)` call."""

    def __init__(self) -> None:
        self.current = TIMED

    def _cuda_setStream(self, stream_id, device_index=0, device_type=1):  # noqa: N802 (torch's name)
        self.current = stream_id

    def _accelerator_setStream(self, stream):  # noqa: N802 (torch's name): torch.accelerator.set_stream
        self.current = stream


def test_switching_away_from_the_timed_stream_while_timed_is_caught():
    # torch ops follow the current stream: a timed call that moves it could run them under the spin
    torch_c = StandInTorchC()
    counter = LaunchCounter()
    counter.watch_stream_switches(torch_c)
    counter.watch_stream(TIMED, lambda: torch_c.current)
    torch_c._cuda_setStream(stream_id=TIMED)  # the harness restoring the timed stream
    assert counter.off_stream == 0
    torch_c._cuda_setStream(stream_id=SIDE)  # `with torch.cuda.stream(side):` entering
    torch_c._cuda_setStream(stream_id=TIMED)  # ... and leaving
    assert counter.off_stream == 1
    torch_c._accelerator_setStream(SIDE)  # the other door, torch.accelerator.set_stream
    torch_c._accelerator_setStream(TIMED)
    assert counter.off_stream == 2
    assert not hasattr(torch_c._cuda_setStream, "__wrapped__")  # no way back to the unwatched original
    counter.watch_stream(None)  # outside the timed calls, streams are the candidate's business
    torch_c._cuda_setStream(stream_id=SIDE)
    assert counter.off_stream == 0
    assert counter.intact()
    torch_c._cuda_setStream = lambda stream_id, **_: None  # unwrapped again by the candidate
    assert not counter.intact()


def test_a_worker_compiles_a_first_kernel_for_its_gpu_without_one(tmp_path, monkeypatch):
    # start-up on the CPU alone: the candidate's first compilation must not pay the backend's set-up
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    assert warm_compiler(90)
    built = {path.suffix for path in tmp_path.rglob("warmup_kernel.*")}
    assert {".ptx", ".cubin"} <= built  # compiled all the way to the H100/H200 binary
    assert not warm_compiler(1)  # no such GPU: nothing compiled, nothing raised
