"""A small launcher that locks a process down, then execs the worker.

Runs single-threaded before the worker's interpreter starts: cuts the network (a new network
namespace), sets resource limits, drops root to an unprivileged user and sets no_new_privs.
`python -m evaluators.jail [options] -- COMMAND...`; `--probe` checks that the unprivileged
user can import what the worker needs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
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


def set_limits(cpu_s: int, file_bytes: int, address_bytes: int | None, processes: int | None) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    if address_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (address_bytes, address_bytes))
    if processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("jail: could not drop root")


def no_new_privileges() -> None:
    _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


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

    isolated = cut_network() if args.net else False
    set_limits(args.cpu, args.fsize, args.as_bytes, args.nproc if args.uid is not None else None)
    if args.uid is not None:
        drop_privileges(args.uid, args.gid if args.gid is not None else args.uid)
    no_new_privileges()
    if args.workdir:
        os.chdir(args.workdir)
    if args.probe:
        check = "import torch, triton, evaluators.worker"
        if args.probe_cuda:
            check += "; import sys; sys.exit(0 if torch.cuda.is_available() else 3)"
        os.execv(sys.executable, [sys.executable, "-c", check])
    if not command:
        print("jail: no command", file=sys.stderr)
        return 2
    os.environ["KERNELSMITH_NETWORK_ISOLATED"] = "1" if isolated else "0"
    os.execvp(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
