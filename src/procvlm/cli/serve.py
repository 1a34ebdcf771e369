"""``procvlm serve``: serve a progress model over HTTP (``/v1/progress``, chat completions)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder written by `procvlm train` (compact or vlm)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--max-batch", type=int, default=16,
                   help="most requests batched into one model call (default: 16)")
    p.add_argument("--max-queue", type=int, default=256,
                   help="most waiting requests; more get 503 (default: 256)")
    p.add_argument("--max-request-mb", type=float, default=32.0,
                   help="largest request body in MiB; larger get 413 (default: 32)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="let requests score datasets inside DIR ({\"dataset\": \"name\", "
                        "\"episode\": 0}); paths outside it, symlinks out of it and '..' get "
                        "403 (default: off, datasets are refused)")


def run(args: argparse.Namespace) -> int:
    from procvlm.errors import ProcvlmError
    from procvlm.serve.server import serve

    if args.max_batch < 1 or args.max_queue < 1 or args.max_request_mb <= 0:
        raise ProcvlmError("--max-batch, --max-queue and --max-request-mb must be positive")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise ProcvlmError(f"--data-root {args.data_root} is not a folder: pass the folder "
                           "holding the datasets clients may name")
    serve(args.run, host=args.host, port=args.port, max_batch=args.max_batch,
          max_queue=args.max_queue, max_request_mb=args.max_request_mb,
          data_root=args.data_root,
          on_ready=lambda url: print(f"procvlm serve: {url} (Ctrl-C to stop)", flush=True))
    return 0
