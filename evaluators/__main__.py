"""`python -m evaluators`: serve the evaluator REST API (what a GPU host's container runs)."""

from __future__ import annotations

import argparse
import os
import sys

from evaluators.api import TOKEN_ENV
from evaluators.service import serve
from evaluators.service_settings import ServiceConfigError, ServiceSettings, parse_devices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluators", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8470, help="port (0: any free port, printed at start)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"bearer token every request but health must carry (default: ${TOKEN_ENV})")
    parser.add_argument("--devices", help="GPU indices to use, e.g. 0,1 (default: every GPU torch sees; 'none')")
    parser.add_argument("--cpu-workers", type=int, help="interpreter (CPU) slots (default: 1 without GPUs, else 0)")
    parser.add_argument("--warm", type=int, default=0, help="pre-started workers kept ready per slot")
    parser.add_argument("--max-queue", type=int, default=256, help="jobs waiting at most before 429")
    parser.add_argument("--result-ttl", type=float, default=3600.0, help="seconds results are kept")
    parser.add_argument("--max-request-bytes", type=int, default=4 << 20, help="largest request body accepted")
    parser.add_argument("--max-source-bytes", type=int, default=1 << 20, help="largest reference or candidate")
    parser.add_argument("--sandbox", default="process", choices=["process", "docker"],
                        help="where workers run: locked-down subprocesses, or a container each (needs dockerd)")
    parser.add_argument("--docker-image", help="the workers' image with --sandbox docker (default: the local "
                        "sandbox image that `make sandbox-image` builds)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    try:
        settings = ServiceSettings(
            host=args.host, port=args.port, token=args.token or None, devices=parse_devices(args.devices),
            cpu_workers=args.cpu_workers, warm=args.warm, max_queue=args.max_queue,
            result_ttl_s=args.result_ttl, max_request_bytes=args.max_request_bytes,
            max_source_bytes=args.max_source_bytes, log_level=args.log_level, sandbox=args.sandbox,
            docker_image=args.docker_image,
        )
        serve(settings, announce=lambda line: print(line, flush=True))
    except ServiceConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
