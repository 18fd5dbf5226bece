"""A small launcher that locks a process down, then runs the worker under it.

Runs single-threaded before the worker's interpreter starts: cuts the network (a new network
namespace) and sets resource limits, then forks; the child drops root to an unprivileged user,
sets no_new_privs and execs the worker, and the jail stays as its parent (see `supervise`).
`python -m evaluators.jail [options] -- COMMAND...`; `--probe` checks that the unprivileged
user can import what the worker needs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from evaluators.proctree import kill_tree

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def cut_network() -> bool:
    """Move into a fresh network namespace (only a down loopback): no route anywhere."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNET) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return False
    # map ourselves so that files keep their owners inside the new user namespace
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    except OSError:
        pass
    return True


def set_limits(cpu_s: int, file_bytes: int, address_bytes: int | None) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    if address_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (address_bytes, address_bytes))


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("jail: could not drop root")


def no_new_privileges() -> None:
    _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def supervise(run: Callable[[], NoReturn]) -> int:
    """Run `run` in a child and stay as its parent until it ends; returns its exit status.

    The jail is a child subreaper: a process the worker starts and abandons (a double fork, a
    setsid) is handed to the jail, not to init, so it stays in the tree the evaluator watches and
    kills. When the worker ends, whatever it left behind is killed before the jail exits; when
    the evaluator is gone, the worker is too. The jail keeps the evaluator's user: a worker that
    dropped to another user can neither signal it nor change its settings.
    """
    _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    evaluator, me = os.getppid(), os.getpid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    child = os.fork()
    if child == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        run()
    status = None
    while status is None:
        status = _reap(child)
        if status is None:
            if os.getppid() != evaluator:
                kill_tree(me, spare_root=True)  # the evaluator died: nothing of its worker runs on
            signal.sigtimedwait({signal.SIGCHLD}, 0.5)
    kill_tree(me, spare_root=True)
    _reap_all()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # the worker died from a signal: so does the jail, for whoever reads its status
        try:
            signal.signal(-code, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP keep their default anyway
        os.kill(me, -code)
        return 128 - code
    return code


def _reap(child: int) -> int | None:
    """Reap every child that has ended (adopted orphans too); the worker's wait status if it has."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == child:
            found = status


def _reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluators.jail")
    parser.add_argument("--net", action="store_true", help="cut the network")
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("--cpu", type=int, default=600)
    parser.add_argument("--fsize", type=int, default=2 << 30)
    parser.add_argument("--as-bytes", type=int)
    parser.add_argument("--nproc", type=int)
    parser.add_argument("--workdir", help="the command's working directory, entered once privileges are dropped")
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--probe-cuda", action="store_true", help="the probe also needs the GPU")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    if not command and not args.probe:
        print("jail: no command", file=sys.stderr)
        return 2
    isolated = cut_network() if args.net else False
    set_limits(args.cpu, args.fsize, args.as_bytes)
    if args.probe:
        lock_down(args)
        check = "import torch, triton, evaluators.worker"
        if args.probe_cuda:
            check += "; import sys; sys.exit(0 if torch.cuda.is_available() else 3)"
        os.execv(sys.executable, [sys.executable, "-c", check])
    os.environ["KERNELSMITH_NETWORK_ISOLATED"] = "1" if isolated else "0"
    jail = os.getpid()

    def run() -> NoReturn:
        try:
            lock_down(args)
            if args.uid is not None:
                os.environ["KERNELSMITH_UNDUMPABLE"] = "1"  # see worker_start.keep_memory_private
                # a worker's uid has no account: libraries that ask for a user name find one here
                os.environ["USER"] = os.environ["LOGNAME"] = "kernelsmith-worker"
            # dropping privileges cleared this: the worker dies with the jail, whoever kills it
            _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != jail:
                os._exit(1)
            os.execvp(command[0], command)
        except BaseException as error:  # nothing of the jail's own code may run on in the child
            print(f"jail: {error}", file=sys.stderr, flush=True)
        os._exit(127)

    no_new_privileges()
    return supervise(run)


def lock_down(args: argparse.Namespace) -> None:
    """What the worker itself gets and the jail does not: another user and its process limit (which
    counts that user's processes; set on the jail, it would count root's at the jail's fork),
    no_new_privs, its directory."""
    if args.uid is not None:
        if args.nproc:
            resource.setrlimit(resource.RLIMIT_NPROC, (args.nproc, args.nproc))
        drop_privileges(args.uid, args.gid if args.gid is not None else args.uid)
    no_new_privileges()
    if args.workdir:
        os.chdir(args.workdir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
