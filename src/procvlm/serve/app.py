"""The HTTP app: progress scoring for any ``ProgressModel`` and OpenAI-compatible chat for a VLM.

Endpoints:
    POST /v1/progress          ``{"task", "frames": [base64 PNG/JPEG], "plan"?, "window"?}`` or
                               ``{"dataset": path, "episode": i}`` ->
                               ``{"progress": [...], "remaining": [...], "stage": [...], ...}``
    POST /v1/chat/completions  OpenAI chat (text + ``image_url`` data URLs) -> generated text
    GET  /v1/models            the served model
    GET  /health               liveness and queue depth

Concurrent requests are batched on the model by one background worker reading a bounded asyncio
queue (503 when full); the model runs in a worker thread so the event loop keeps accepting.
Bodies past ``max_request_mb`` get 413, malformed input a 4xx naming the bad field.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from procvlm.data.episode import ArrayFrames
from procvlm.errors import ProcvlmError
from procvlm.models.base import ProgressModel, ProgressPrediction

log = logging.getLogger(__name__)


class HTTPError(Exception):
    """A client error with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Job:
    """One queued request: ``kind`` is "progress" or "chat"; ``args`` what the model takes."""

    kind: str
    args: tuple
    future: asyncio.Future


# ----------------------------------------------------------------------------- decoding
def decode_image(data: Any, where: str) -> np.ndarray:
    """(H, W, 3) uint8 from a base64 PNG/JPEG (a ``data:`` URL prefix is allowed)."""
    if not isinstance(data, str):
        raise HTTPError(422, f"{where} is not a base64 PNG/JPEG image (got {type(data).__name__})")
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        raw = base64.b64decode(data, validate=True)
        with Image.open(io.BytesIO(raw)) as im:
            if im.format not in ("PNG", "JPEG"):
                raise HTTPError(422, f"{where} is a {im.format} image: send PNG or JPEG")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError):
        raise HTTPError(422, f"{where} is not a base64 PNG/JPEG image") from None


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HTTPError(422, f"{where} must be a list of strings")
    return value


def parse_progress_request(body: dict) -> tuple[Any, str | None, list[str] | None, int]:
    """(episode or frames, task, plan, window) from a /v1/progress body."""
    window = body.get("window", 8)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 64:
        raise HTTPError(422, "window must be an integer in [1, 64]")
    if "dataset" in body:
        return _dataset_episode(body) + (window,)
    task, frames = body.get("task"), body.get("frames")
    if not isinstance(task, str) or not task.strip():
        raise HTTPError(422, "task must be a non-empty string (or send dataset + episode)")
    if not isinstance(frames, list) or not frames:
        raise HTTPError(422, "frames must be a non-empty list of base64 PNG/JPEG images")
    plan = _str_list(body["plan"], "plan") if body.get("plan") is not None else None
    arrays = [decode_image(f, f"frames[{i}]") for i, f in enumerate(frames)]
    for i, a in enumerate(arrays):
        if a.shape != arrays[0].shape:
            raise HTTPError(422, f"frames[{i}] is {a.shape[1]}x{a.shape[0]} but frames[0] is "
                                 f"{arrays[0].shape[1]}x{arrays[0].shape[0]}: send equal sizes")
    return ArrayFrames(np.stack(arrays)), task, plan, window


def _dataset_episode(body: dict) -> tuple[Any, None, None]:
    path, episode = body.get("dataset"), body.get("episode")
    if not isinstance(path, str):
        raise HTTPError(422, "dataset must be a path string")
    if not isinstance(episode, int) or isinstance(episode, bool):
        raise HTTPError(422, "episode must be an integer episode index")
    from procvlm.data import open_dataset

    try:
        ds = open_dataset(path)
        if episode not in ds.episode_indices:
            raise HTTPError(404, f"dataset {path} has no episode {episode}")
        return ds.episode(episode), None, None
    except ProcvlmError as e:
        raise HTTPError(400, str(e)) from e


def parse_chat_request(body: dict, max_tokens_cap: int) -> tuple[list[dict], list, int]:
    """(typed-content conversation, images, max_new_tokens) from an OpenAI chat body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPError(422, "messages must be a non-empty list")
    conv, images = [], []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise HTTPError(422, f"messages[{i}] needs a role of system, user or assistant")
        content = m.get("content")
        if isinstance(content, str):
            conv.append({"role": m["role"], "content": [{"type": "text", "text": content}]})
            continue
        if not isinstance(content, list):
            raise HTTPError(422, f"messages[{i}].content must be a string or a list of parts")
        parts = []
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": part["text"]})
            elif kind == "image_url":
                url = (part.get("image_url") or {}).get("url")
                images.append(decode_image(url, f"{where}.image_url"))
                parts.append({"type": "image"})
            else:
                raise HTTPError(422, f"{where} must be a text or image_url part")
        conv.append({"role": m["role"], "content": parts})
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or max_tokens_cap
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise HTTPError(422, "max_tokens must be a positive integer")
    return conv, images, min(max_tokens, max_tokens_cap)


def prediction_json(pred: ProgressPrediction) -> dict[str, Any]:
    """The JSON answer of /v1/progress."""
    out: dict[str, Any] = {"progress": [round(float(p), 6) for p in pred.progress],
                           "remaining": pred.remaining,
                           "stage": [int(s) for s in pred.stage]}
    if pred.flags is not None:
        out["flags"] = pred.flags
    if pred.text is not None:
        out["text"] = pred.text
    return out


# ----------------------------------------------------------------------------- batching
class Batcher:
    """A bounded queue and one worker that runs queued jobs on the model in batches.

    Args:
        model: the progress model.
        max_batch: most jobs per model call.
        max_queue: most jobs waiting; beyond it ``submit`` raises 503.
    """

    def __init__(self, model: ProgressModel, max_batch: int, max_queue: int) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queue)
        self.task: asyncio.Task | None = None
        self.batches = 0

    def start(self) -> None:
        """Start the worker on the running loop (a fresh queue: an app may be served again)."""
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def submit(self, kind: str, *args: Any) -> Any:
        """Queue a job and wait for its result (raises 503 when the queue is full)."""
        fut = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Job(kind, args, fut))
        except asyncio.QueueFull:
            raise HTTPError(503, f"server busy: {self.queue.maxsize} requests already queued; "
                                 "retry later") from None
        return await fut

    async def _run(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            while len(jobs) < self.max_batch and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            for kind in ("progress", "chat"):
                group = [j for j in jobs if j.kind == kind and not j.future.cancelled()]
                if group:
                    await self._run_group(kind, group)
            self.batches += 1

    async def _run_group(self, kind: str, jobs: list[Job]) -> None:
        fn = self._progress if kind == "progress" else self._chat
        try:
            results = await asyncio.to_thread(fn, [j.args for j in jobs])
        except Exception:  # one bad job must not fail the others: retry them one by one
            if len(jobs) == 1:
                log.exception("%s request failed", kind)
                _settle(jobs[0], error=HTTPError(500, f"{kind} failed on this input"))
                return
            for j in jobs:
                await self._run_group(kind, [j])
            return
        for j, r in zip(jobs, results):
            _settle(j, result=r)

    def _progress(self, args: list[tuple]) -> list[ProgressPrediction]:
        items = [(source, task, plan) for source, task, plan, _ in args]
        windows = {w for *_, w in args}
        if hasattr(self.model, "predict_batch") and len(windows) == 1:
            return self.model.predict_batch(items, window=windows.pop())
        return [self.model.predict(s, t, p, window=w) for s, t, p, w in args]

    def _chat(self, args: list[tuple]) -> list[str]:
        by_tokens: dict[int, list[int]] = {}
        for i, (_, _, n) in enumerate(args):
            by_tokens.setdefault(n, []).append(i)
        out: list[str] = [""] * len(args)
        for n, idx in by_tokens.items():
            texts = self.model.chat([args[i][0] for i in idx], [args[i][1] for i in idx],
                                    max_new_tokens=n)
            for i, t in zip(idx, texts):
                out[i] = t
        return out


def _settle(job: Job, result: Any = None, error: Exception | None = None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)


# ----------------------------------------------------------------------------- the app
async def read_json(request: Request, limit: int) -> dict:
    """The JSON object body, refusing more than ``limit`` bytes (413) and bad JSON (400)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"request body is {int(declared)} bytes; the limit is {limit} "
                             "(server --max-request-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body exceeds {limit} bytes (server --max-request-mb)")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"request body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise HTTPError(422, "request body must be a JSON object")
    return body


def create_app(model: ProgressModel, *, max_batch: int = 16, max_queue: int = 256,
               max_request_mb: float = 32.0, model_name: str | None = None,
               max_tokens: int = 1024) -> FastAPI:
    """The FastAPI app serving ``model``.

    Args:
        model: any ``ProgressModel``; chat completions need one with a ``chat`` method (a VLM).
        max_batch: most requests per model call.
        max_queue: most requests waiting (503 beyond).
        max_request_mb: largest request body in MiB (413 beyond).
        model_name: the id /v1/models lists (defaults to the model type).
        max_tokens: cap on generated tokens per chat answer.
    """
    if max_batch < 1 or max_queue < 1 or max_request_mb <= 0:
        raise ProcvlmError(f"max_batch={max_batch}, max_queue={max_queue}, max_request_mb="
                           f"{max_request_mb}: all must be positive")
    limit = int(max_request_mb * 1024 * 1024)
    name = model_name or f"procvlm-{getattr(model, 'model_type', '') or 'model'}"
    batcher = Batcher(model, max_batch, max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="procvlm", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError) -> JSONResponse:
        return JSONResponse({"error": {"message": exc.message, "code": exc.status}},
                            status_code=exc.status)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": name, "queued": batcher.queue.qsize(),
                "batches": batcher.batches}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                            "owned_by": "procvlm"}]}

    @app.post("/v1/progress")
    async def progress(request: Request) -> dict:
        body = await read_json(request, limit)
        args = await asyncio.to_thread(parse_progress_request, body)
        return prediction_json(await batcher.submit("progress", *args))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        if not hasattr(model, "chat"):
            raise HTTPError(400, f"the served {getattr(model, 'model_type', '')} model cannot "
                                 "chat: serve a VLM run for /v1/chat/completions")
        body = await read_json(request, limit)
        conv, images, n = await asyncio.to_thread(parse_chat_request, body, max_tokens)
        text = await batcher.submit("chat", conv, images, n)
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                "created": int(time.time()), "model": name,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]}

    return app
