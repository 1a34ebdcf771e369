"""The HTTP app: progress scoring for any ``ProgressModel`` and OpenAI-compatible chat for a VLM.

Endpoints:
    POST /v1/progress          ``{"task", "frames": [base64 PNG/JPEG], "plan"?, "window"?}`` or
                               ``{"dataset": path, "episode": i}`` ->
                               ``{"progress": [...], "remaining": [...], "stage": [...],
                               "done"?: [...], ...}`` (``done``: P(task finished) per frame,
                               from models that give it)
    POST /v1/chat/completions  OpenAI chat (text + ``image_url`` data URLs) -> generated text
    GET  /v1/models            the served model
    GET  /health               liveness and queue depth

Concurrent requests are batched continuously by one scheduler reading a bounded asyncio queue
(503 when full). A VLM request is split into prompts (one per scored frame, one per chat); every
model step takes up to ``batch_size`` prompts from all waiting requests, so a request that arrives
while others run joins the next step instead of waiting for them to finish, and answers as soon
as its own prompts are done. Other models (and a VLM that reuses its reasoning) take whole
requests, up to ``max_batch`` per step. The model runs in a worker thread so the event loop keeps
accepting. Bodies past ``max_request_mb`` get 413, malformed input a 4xx naming the bad field.

Datasets named in a request (``{"dataset": path}``) are read only when the server was started
with a data root (``--data-root DIR``): relative paths are taken inside it; a path outside it,
through a symbolic link out of it, or with ``..`` answers 403 and is logged.

Chat completions follow OpenAI's format: ``usage`` counts the prompt and generated tokens,
``finish_reason`` is ``"length"`` when ``max_tokens`` cut the answer, and ``stream: true`` sends
the answer as server-sent ``chat.completion.chunk`` events (once it is generated; with
``stream_options.include_usage`` a last chunk carries ``usage``), then ``data: [DONE]``.
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
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
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
    """One queued request.

    ``kind`` is "progress" or "chat"; ``args`` what the model takes. A job split into prompts
    (a VLM's) holds them in ``prompts`` / ``images`` and collects one answer per prompt before
    ``finish`` turns the answers into its result; a whole job leaves ``prompts`` empty.
    """

    kind: str
    args: tuple
    future: asyncio.Future
    prompts: list[str] = field(default_factory=list)
    images: list[list] = field(default_factory=list)
    limit: int = 0
    with_logits: bool = False
    finish: Callable[[list[dict]], Any] | None = None
    answers: dict[int, dict] = field(default_factory=dict)


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


def parse_progress_request(body: dict, data_root: str | Path | None = None
                           ) -> tuple[Any, str | None, list[str] | None, int]:
    """(episode or frames, task, plan, window) from a /v1/progress body.

    Args:
        body: the request's JSON object.
        data_root: the folder datasets may be read from (None: datasets are refused).
    """
    window = body.get("window", 8)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 64:
        raise HTTPError(422, "window must be an integer in [1, 64]")
    if "dataset" in body:
        return _dataset_episode(body, data_root) + (window,)
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


def dataset_path(path: str, data_root: str | Path | None) -> Path:
    """The dataset folder a request names, inside ``data_root``.

    Raises:
        HTTPError: 403 when reading datasets is off (no data root), the path has a ``..``
            part, or it resolves (symbolic links followed) outside the data root.
    """
    if data_root is None:
        log.warning("refused dataset %r: the server has no --data-root", path)
        raise HTTPError(403, "this server reads no datasets: send frames, or start it with "
                             "--data-root DIR")
    if ".." in Path(path).parts:
        log.warning("refused dataset %r: '..' in the path", path)
        raise HTTPError(403, f"dataset {path!r}: '..' is not allowed; name a folder inside the "
                             "data root")
    root = Path(data_root).resolve()
    full = (root / path).resolve()
    if full != root and root not in full.parents:
        log.warning("refused dataset %r: resolves to %s, outside the data root %s", path, full,
                    root)
        raise HTTPError(403, f"dataset {path!r} is outside the server's data root")
    return full


def _dataset_episode(body: dict, data_root: str | Path | None) -> tuple[Any, None, None]:
    path, episode = body.get("dataset"), body.get("episode")
    if not isinstance(path, str):
        raise HTTPError(422, "dataset must be a path string")
    if not isinstance(episode, int) or isinstance(episode, bool):
        raise HTTPError(422, "episode must be an integer episode index")
    from procvlm.data import open_dataset

    path = str(dataset_path(path, data_root))
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
    if pred.done is not None:
        out["done"] = [round(float(p), 6) for p in pred.done]
    if pred.flags is not None:
        out["flags"] = pred.flags
    if pred.text is not None:
        out["text"] = pred.text
    return out


# ----------------------------------------------------------------------------- batching
class Batcher:
    """A bounded queue and one scheduler that runs waiting work on the model, step by step.

    Args:
        model: the progress model.
        max_batch: most whole requests per model step (models that take whole requests).
        max_queue: most requests waiting; beyond it ``submit`` raises 503.
    """

    def __init__(self, model: ProgressModel, max_batch: int, max_queue: int) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queue)
        self.task: asyncio.Task | None = None
        self.batches = 0
        self.most_requests_in_a_batch = 0
        self._whole: deque[Job] = deque()
        self._prompts: dict[tuple[bool, int], deque[tuple[Job, int]]] = {}
        self._turn = 0

    def start(self) -> None:
        """Start the scheduler on the running loop (a fresh queue: an app may be served again)."""
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def submit(self, job: Job) -> Any:
        """Queue a job and wait for its result (raises 503 when the queue is full)."""
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise HTTPError(503, f"server busy: {self.queue.maxsize} requests already queued; "
                                 "retry later") from None
        return await job.future

    def _admit(self, job: Job) -> None:
        if not job.prompts:
            self._whole.append(job)
            return
        pool = self._prompts.setdefault((job.with_logits, job.limit), deque())
        pool.extend((job, k) for k in range(len(job.prompts)))

    def _idle(self) -> bool:
        return not self._whole and not any(self._prompts.values())

    async def _run(self) -> None:
        while True:
            if self._idle():
                self._admit(await self.queue.get())
            while not self.queue.empty():
                self._admit(self.queue.get_nowait())
            pools = [key for key, pool in self._prompts.items() if pool]
            kinds = pools + (["whole"] if self._whole else [])
            key = kinds[self._turn % len(kinds)]
            self._turn += 1
            if key == "whole":
                group = [self._whole.popleft()
                         for _ in range(min(self.max_batch, len(self._whole)))]
                await self._run_whole([j for j in group if not j.future.cancelled()])
            else:
                await self._run_prompts(key, self._prompts[key])
            self.batches += 1

    async def _run_prompts(self, key: tuple[bool, int], pool: deque) -> None:
        """One generation step over up to ``batch_size`` waiting prompts of any requests."""
        size = getattr(getattr(self.model, "config", None), "batch_size", self.max_batch)
        units = []
        while pool and len(units) < size:
            job, k = pool.popleft()
            if not job.future.done():
                units.append((job, k))
        if not units:
            return
        self.most_requests_in_a_batch = max(self.most_requests_in_a_batch,
                                            len({id(j) for j, _ in units}))
        with_logits, limit = key
        try:
            gen = await asyncio.to_thread(
                self.model.generate_prompts, [j.prompts[k] for j, k in units],
                [j.images[k] for j, k in units], limit, with_logits, with_done=True)
        except Exception:
            log.exception("a generation step failed")
            for job, _ in units:
                _settle(job, error=HTTPError(500, f"{job.kind} failed on this input"))
            return
        for n, (job, k) in enumerate(units):
            job.answers[k] = {"text": gen.text[n], "tokens": gen.tokens[n],
                              "prompt_tokens": gen.prompt_tokens[n],
                              "finished": gen.finished[n],
                              "expected": gen.expected[n] if gen.expected else None,
                              "done": gen.done[n] if gen.done is not None else None,
                              "read_done": gen.done is not None}
            if len(job.answers) == len(job.prompts) and not job.future.done():
                try:
                    result = job.finish([job.answers[i] for i in range(len(job.prompts))])
                except Exception:
                    log.exception("%s request failed", job.kind)
                    _settle(job, error=HTTPError(500, f"{job.kind} failed on this input"))
                    continue
                _settle(job, result=result)

    async def _run_whole(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        self.most_requests_in_a_batch = max(self.most_requests_in_a_batch, len(jobs))
        try:
            results = await asyncio.to_thread(self._progress, [j.args for j in jobs])
        except Exception:  # one bad job must not fail the others: retry them one by one
            if len(jobs) == 1:
                log.exception("%s request failed", jobs[0].kind)
                _settle(jobs[0], error=HTTPError(500, f"{jobs[0].kind} failed on this input"))
                return
            for j in jobs:
                await self._run_whole([j])
            return
        for j, r in zip(jobs, results):
            _settle(j, result=r)

    def _progress(self, args: list[tuple]) -> list[ProgressPrediction]:
        items = [(source, task, plan) for source, task, plan, _ in args]
        windows = {w for *_, w in args}
        if len(windows) == 1:
            return self.model.predict_batch(items, window=windows.pop())
        return [self.model.predict_batch([(s, t, p)], window=w)[0] for s, t, p, w in args]


def _is_vlm(model: ProgressModel) -> bool:
    """Whether ``model`` is procvlm's VLM (imported only then: a compact model's server never
    loads the VLM code)."""
    if getattr(model, "model_type", "") != "vlm":
        return False
    from procvlm.models.vlm.modeling_vlm import VLMProgressModel

    return isinstance(model, VLMProgressModel)


def _splits_into_prompts(model: ProgressModel) -> bool:
    """Whether requests to ``model`` are scheduled prompt by prompt (a VLM answering every
    frame whole) rather than as whole requests."""
    return _is_vlm(model) and model.config.reasoning == "every"


def progress_job(model: ProgressModel, args: tuple, future: asyncio.Future) -> Job:
    """The job of a /v1/progress request (its prompts built here, off the event loop)."""
    if not _splits_into_prompts(model):
        return Job("progress", args, future)
    source, task, plan, window = args
    prompts, images, resolved = model.progress_prompts([(source, task, plan)], window)
    probs = model.config.readout == "probs"

    def finish(answers: list[dict]) -> ProgressPrediction:
        expected = [a["expected"] for a in answers] if probs else None
        done = [a["done"] for a in answers] if all(a["read_done"] for a in answers) else None
        return model.assemble([a["text"] for a in answers], expected, resolved, done=done)[0]

    return Job("progress", args, future, prompts, images, model.config.max_new_tokens, probs,
               finish)


def chat_job(model: ProgressModel, conv: list[dict], images: list, limit: int,
             future: asyncio.Future) -> Job:
    """The job of a chat completion: one prompt, answered with its token counts."""
    from procvlm.models.vlm.processor_vlm import to_pil

    prompt = model.chat_prompt(conv)
    shown = [to_pil(im, model.config.image_size) for im in images]
    return Job("chat", (), future, [prompt], [shown], limit, False, lambda answers: answers[0])


def _settle(job: Job, result: Any = None, error: Exception | None = None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)


# ----------------------------------------------------------------------------- chat replies
def _stream_options(body: dict) -> tuple[bool, bool]:
    """(stream, include_usage) of a chat body."""
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise HTTPError(422, "stream must be true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise HTTPError(422, "stream_options must be an object")
    return stream, bool(options.get("include_usage", False))


def completion_json(answer: dict, model_name: str) -> dict[str, Any]:
    """The ``chat.completion`` object of one answer (text, token counts, how it ended)."""
    usage = {"prompt_tokens": answer["prompt_tokens"], "completion_tokens": answer["tokens"],
             "total_tokens": answer["prompt_tokens"] + answer["tokens"]}
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": model_name,
            "choices": [{"index": 0, "finish_reason": "stop" if answer["finished"] else "length",
                         "message": {"role": "assistant", "content": answer["text"]}}],
            "usage": usage}


def sse_chunks(reply: dict, answer: dict, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent ``chat.completion.chunk`` events of a finished answer: the role, the text in
    pieces, the finish reason, optionally the usage, then ``[DONE]``."""
    head = {k: reply[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    text = answer["text"]
    pieces = [text[i:i + 16] for i in range(0, len(text), 16)]

    def event(choices: list, **extra: Any) -> str:
        return f"data: {json.dumps(head | {'choices': choices} | extra)}\n\n"

    async def gen() -> AsyncIterator[str]:
        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                      "finish_reason": None}])
        for piece in pieces:
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {},
                      "finish_reason": reply["choices"][0]["finish_reason"]}])
        if include_usage:
            yield event([], usage=reply["usage"])
        yield "data: [DONE]\n\n"

    return gen()


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
               max_tokens: int = 1024, data_root: str | Path | None = None) -> FastAPI:
    """The FastAPI app serving ``model``.

    Args:
        model: any ``ProgressModel``; chat completions need one with a ``chat`` method (a VLM).
        max_batch: most requests per model call.
        max_queue: most requests waiting (503 beyond).
        max_request_mb: largest request body in MiB (413 beyond).
        model_name: the id /v1/models lists (defaults to the model type).
        max_tokens: cap on generated tokens per chat answer.
        data_root: the folder whose datasets requests may name (None: no dataset is read).
    """
    if max_batch < 1 or max_queue < 1 or max_request_mb <= 0:
        raise ProcvlmError(f"max_batch={max_batch}, max_queue={max_queue}, max_request_mb="
                           f"{max_request_mb}: all must be positive")
    if data_root is not None and not Path(data_root).is_dir():
        raise ProcvlmError(f"--data-root {data_root} is not a folder: pass the folder holding "
                           "the datasets clients may name")
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
                "batches": batcher.batches,
                "most_requests_in_a_batch": batcher.most_requests_in_a_batch}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                            "owned_by": "procvlm"}]}

    @app.post("/v1/progress")
    async def progress(request: Request) -> dict:
        body = await read_json(request, limit)
        args = await asyncio.to_thread(parse_progress_request, body, data_root)
        future = asyncio.get_running_loop().create_future()
        job = await asyncio.to_thread(progress_job, model, args, future)
        return prediction_json(await batcher.submit(job))

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if not _is_vlm(model):
            raise HTTPError(400, f"the served {getattr(model, 'model_type', '')} model cannot "
                                 "chat: serve a VLM run for /v1/chat/completions")
        body = await read_json(request, limit)
        conv, images, n = await asyncio.to_thread(parse_chat_request, body, max_tokens)
        stream, usage_chunk = _stream_options(body)
        future = asyncio.get_running_loop().create_future()
        job = await asyncio.to_thread(chat_job, model, conv, images, n, future)
        answer = await batcher.submit(job)
        reply = completion_json(answer, name)
        if not stream:
            return reply
        return StreamingResponse(sse_chunks(reply, answer, usage_chunk),
                                 media_type="text/event-stream")

    return app
