"""Load a run and serve it with uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from procvlm.errors import ProcvlmError

log = logging.getLogger(__name__)


def serve(run: str | Path, *, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 16,
          max_queue: int = 256, max_request_mb: float = 32.0,
          on_ready: Callable[[str], None] | None = None,
          data_root: str | Path | None = None) -> None:
    """Serve the model in ``run`` (compact or VLM) until interrupted.

    Args:
        run: a folder written by ``procvlm train`` (or a transformers / peft VLM folder).
        host: interface to bind (127.0.0.1: this machine only).
        port: TCP port.
        max_batch: most requests per model call.
        max_queue: most waiting requests (503 beyond).
        max_request_mb: largest request body in MiB (413 beyond).
        on_ready: called with the base URL once the model has loaded, before serving (so a
            bad run fails before anything announces a URL).
        data_root: the folder whose datasets requests may name (None: none is read).
    """
    import uvicorn

    from procvlm.models.base import load_model
    from procvlm.serve.app import create_app

    if not 0 < port < 65536:
        raise ProcvlmError(f"--port {port}: need a TCP port in 1..65535")
    model = load_model(run)
    app = create_app(model, max_batch=max_batch, max_queue=max_queue,
                     max_request_mb=max_request_mb, model_name=Path(run).name,
                     data_root=data_root)
    log.info("serving %s on http://%s:%d", run, host, port)
    if on_ready is not None:
        on_ready(f"http://{host}:{port}/v1")
    uvicorn.run(app, host=host, port=port, log_level="info")
