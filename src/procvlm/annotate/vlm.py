"""The ``vlm`` annotator: the paper's two passes against any OpenAI-compatible chat endpoint.

Pass 1 (plan): the task and the first frame in, the ordered atomic actions out (a JSON list).
Pass 2 (temporal grounding): N frames sampled evenly over the episode, each tagged
"Frame k (t=..s)", and the plan in; a JSON list of ``{"action", "start_frame", "end_frame"}``
(frame tags, inclusive) out. Answers are validated (schema, actions from the plan, tags in
range, segments in time order) and asked again with the reason when malformed. Results are
cached per episode under ``cache_dir``, keyed by the endpoint's model, the prompts and a hash of
the episode's content; ``annotate_many`` keeps ``concurrency`` requests in flight.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from procvlm._io import write_json
from procvlm.annotate.base import Annotation, Annotator
from procvlm.data.episode import Episode, Subtask
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000/v1"
PLAN_PROMPT = (
    "You see the first camera frame of a robot manipulation episode. The task is: \"{task}\".\n"
    "List the ordered atomic actions that complete the task, each one short imperative phrase "
    "starting with a verb from: Grasp, Place, Push, Pull, Open, Close, Press, Rotate, Tilt, "
    "Hang, Insert, Lift, Move (e.g. \"Grasp the puck\", \"Place the puck onto the goal\").\n"
    "Answer with only a JSON list of strings.")
GROUNDING_PROMPT = (
    "These are {n} frames sampled in time order from a robot episode for the task \"{task}\" "
    "({duration:.2f} s). The plan is:\n{plan}\n"
    "For each action that the robot performs, give the first and the last frame where it is "
    "performed, using the frame numbers k of the \"Frame k\" tags. Segments must be in time "
    "order and must not overlap; leave out actions that never happen.\n"
    "Answer with only a JSON list of objects {{\"action\": <action from the plan>, "
    "\"start_frame\": <k>, \"end_frame\": <k>}}.")


class AnswerError(ValueError):
    """An answer that does not follow the requested JSON schema (the model is asked again)."""


@dataclass(frozen=True)
class Segment:
    """One grounded action, in sampled-frame tags (inclusive)."""

    action: str
    start: int
    end: int
    completed: bool | None = None


def _json_in(text: str) -> Any:
    """The JSON list in a model answer (code fences and prose around it are ignored)."""
    text = re.sub(r"```(?:json)?", "", text)
    lo, hi = text.find("["), text.rfind("]")
    if lo < 0 or hi <= lo:
        raise AnswerError("no JSON list in the answer")
    try:
        return json.loads(text[lo:hi + 1])
    except json.JSONDecodeError as exc:
        raise AnswerError(f"invalid JSON ({exc.msg})") from exc


def parse_plan(text: str) -> list[str]:
    """Validate a pass-1 answer: a non-empty JSON list of non-empty strings."""
    plan = _json_in(text)
    if not isinstance(plan, list) or not plan or len(plan) > 30:
        raise AnswerError("the plan must be a JSON list of 1 to 30 actions")
    out = []
    for item in plan:
        if not isinstance(item, str) or not item.strip():
            raise AnswerError(f"plan item {item!r} is not a non-empty string")
        out.append(re.sub(r"^\s*\d+[.)]\s*", "", item).strip().rstrip("."))
    return out


def parse_grounding(text: str, plan: list[str], num_samples: int) -> list[Segment]:
    """Validate a pass-2 answer against the plan and the number of sampled frames.

    Raises:
        AnswerError: not a list of {action, start_frame, end_frame}, an action not in the plan,
            a frame tag out of [0, num_samples), start > end, or segments out of time order.
    """
    items = _json_in(text)
    if not isinstance(items, list) or not items:
        raise AnswerError("the answer must be a non-empty JSON list of segments")
    lookup = {a.lower().rstrip("."): a for a in plan}
    out: list[Segment] = []
    for item in items:
        if not isinstance(item, dict) or not {"action", "start_frame", "end_frame"} <= set(item):
            raise AnswerError(f"segment {item!r} needs action, start_frame and end_frame")
        action = lookup.get(str(item["action"]).strip().lower().rstrip("."))
        if action is None:
            raise AnswerError(f"action {item['action']!r} is not in the plan")
        try:
            start, end = int(item["start_frame"]), int(item["end_frame"])
        except (TypeError, ValueError) as exc:
            raise AnswerError(f"frame numbers of {item!r} are not integers") from exc
        if not 0 <= start <= end < num_samples:
            raise AnswerError(f"segment {action!r} [{start}, {end}] is not within frames "
                              f"0..{num_samples - 1} with start <= end")
        if out and (start < out[-1].end or start <= out[-1].start):
            raise AnswerError(f"segment {action!r} starts at {start}, before the previous one")
        done = item.get("completed")
        out.append(Segment(action, start, end, done if isinstance(done, bool) else None))
    return out


def segments_to_subtasks(segments: list[Segment], sample_idx: np.ndarray, num_frames: int,
                         success: bool | None) -> list[Subtask]:
    """Map sampled-frame tags back to episode frames (end exclusive).

    A segment covers the frames from its first tag up to the next segment's first tag, or to
    the frame after its last tag, whichever comes first; the last one ending on the last tag
    runs to the end of the episode.
    """
    out = []
    n = len(sample_idx)
    for i, seg in enumerate(segments):
        start = int(sample_idx[seg.start])
        end = int(sample_idx[seg.end + 1]) if seg.end + 1 < n else num_frames
        if i + 1 < len(segments):
            end = min(end, int(sample_idx[segments[i + 1].start]))
        if end <= start:
            continue
        done = seg.completed if seg.completed is not None else True
        if i == len(segments) - 1 and success is False:
            done = False
        out.append(Subtask(seg.action, start, end, done))
    return out


def _jpeg_data_url(image: np.ndarray, size: int) -> str:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image))
    if max(img.size) > size:
        img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class VLMAnnotator(Annotator):
    """Two-pass annotation by a VLM behind an OpenAI-compatible ``/chat/completions``.

    Args:
        base_url: endpoint root ending in ``/v1``; default ``$PROCVLM_VLM_URL`` or
            http://127.0.0.1:8000/v1.
        model: model name; default ``$PROCVLM_VLM_MODEL``, else the first one ``/models`` lists.
        api_key: bearer token; default ``$OPENAI_API_KEY`` (none sent when unset).
        num_frames: frames sampled for the grounding pass.
        concurrency: requests in flight in ``annotate_many``.
        max_retries: new attempts after a malformed answer.
        cache_dir: folder of cached answers (one JSON per episode); None disables the cache.
        timeout: seconds per HTTP request.
        image_size: longest side of the JPEGs sent.
        camera: camera to show (default: the episode's main camera).
        plan: skip pass 1 and ground this plan.
        use_episode_plan: skip pass 1 when ``episode.plan`` is set.
    """

    name = "vlm"

    def __init__(self, base_url: str | None = None, model: str | None = None,
                 api_key: str | None = None, *, num_frames: int = 16, concurrency: int = 4,
                 max_retries: int = 3, cache_dir: str | os.PathLike | None = None,
                 timeout: float = 120.0, image_size: int = 448, camera: str | None = None,
                 plan: list[str] | None = None, use_episode_plan: bool = False) -> None:
        if num_frames < 2 or concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ProcvlmError(f"num_frames={num_frames} (>= 2), concurrency={concurrency} "
                               f"(>= 1), max_retries={max_retries} (>= 0), timeout={timeout} "
                               "(> 0): fix the VLM annotator settings")
        self.base_url = (base_url or os.environ.get("PROCVLM_VLM_URL") or DEFAULT_URL).rstrip("/")
        self.model = model or os.environ.get("PROCVLM_VLM_MODEL")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.num_frames, self.concurrency, self.max_retries = num_frames, concurrency, max_retries
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.timeout, self.image_size, self.camera = timeout, image_size, camera
        self.plan, self.use_episode_plan = plan, use_episode_plan
        self._client = None

    # ---- HTTP ---------------------------------------------------------------------------
    def _http(self):
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.Client(timeout=self.timeout, headers=headers)
        return self._client

    def _request(self, method: str, path: str, payload: dict | None = None) -> dict:
        import httpx

        url = f"{self.base_url}{path}"
        try:
            resp = self._http().request(method, url, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ProcvlmError(
                f"cannot reach VLM endpoint {self.base_url}: start one (vllm serve MODEL, or "
                "procvlm serve RUN) or pass --annotator-arg base_url=URL") from exc
        except httpx.TimeoutException as exc:
            raise ProcvlmError(f"VLM endpoint {url} did not answer within {self.timeout} s: "
                               "raise --annotator-arg timeout=S or lower "
                               "--annotator-arg num_frames=N") from exc
        if resp.status_code >= 400:
            raise ProcvlmError(f"VLM endpoint {url} answered HTTP {resp.status_code}: "
                               f"{resp.text[:200]!r}; check --annotator-arg model=NAME and "
                               "the server log")
        return resp.json()

    def _model_name(self) -> str:
        if self.model is None:
            listed = self._request("GET", "/models").get("data") or []
            if not listed:
                raise ProcvlmError(f"VLM endpoint {self.base_url} lists no model: pass "
                                   "--annotator-arg model=NAME")
            self.model = str(listed[0]["id"])
        return self.model

    def _ask(self, content: list[dict], parse) -> Any:
        """Send one user turn; on a malformed answer, say why and ask again."""
        messages: list[dict] = [{"role": "user", "content": content}]
        reason = ""
        for attempt in range(self.max_retries + 1):
            reply = self._request("POST", "/chat/completions", {
                "model": self._model_name(), "messages": messages, "temperature": 0.0,
                "max_tokens": 1024})
            try:
                text = reply["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError) as exc:
                raise ProcvlmError(f"VLM endpoint {self.base_url} did not answer in the OpenAI "
                                   "chat format (no choices[0].message.content)") from exc
            try:
                return parse(text)
            except AnswerError as exc:
                reason = str(exc)
                logger.info("malformed VLM answer (attempt %d): %s", attempt + 1, reason)
                messages = messages[:1] + [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f"That answer is invalid: {reason}. "
                                                "Answer again with only the JSON list."}]
        raise ProcvlmError(f"VLM at {self.base_url} gave no valid answer in "
                           f"{self.max_retries + 1} attempts (last: {reason}): try a stronger "
                           "--annotator-arg model=NAME or raise --annotator-arg max_retries=N")

    # ---- annotation ---------------------------------------------------------------------
    def _sample(self, episode: Episode) -> tuple[np.ndarray, list[str]]:
        frames = episode.frames[self.camera] if self.camera else episode.main_frames()
        idx = np.unique(np.linspace(0, len(episode) - 1, self.num_frames).round().astype(int))
        images = np.asarray(frames[idx])
        return idx, [_jpeg_data_url(im, self.image_size) for im in images]

    def _cache_path(self, episode: Episode, urls: list[str]) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha256()
        for part in (self._model_name(), PLAN_PROMPT, GROUNDING_PROMPT, episode.task,
                     json.dumps(self._given_plan(episode)), str(len(episode)), *urls):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        return self.cache_dir / f"episode_{episode.episode_index:06d}_{h.hexdigest()[:24]}.json"

    def _given_plan(self, episode: Episode) -> list[str] | None:
        if self.plan:
            return list(self.plan)
        return list(episode.plan) if self.use_episode_plan and episode.plan else None

    def annotate(self, episode: Episode) -> Annotation:
        idx, urls = self._sample(episode)
        cache = self._cache_path(episode, urls)
        if cache is not None and cache.exists():
            answer = json.loads(cache.read_text())
        else:
            answer = self._two_passes(episode, idx, urls)
            if cache is not None:
                write_json(cache, answer)
        plan = answer["plan"]
        segments = [Segment(**s) for s in answer["segments"]]
        subtasks = segments_to_subtasks(segments, idx, len(episode), episode.success)
        return Annotation(subtasks=subtasks, plan=plan)

    def _two_passes(self, episode: Episode, idx: np.ndarray, urls: list[str]) -> dict:
        plan = self._given_plan(episode)
        if plan is None:
            plan = self._ask([{"type": "text", "text": PLAN_PROMPT.format(task=episode.task)},
                              {"type": "image_url", "image_url": {"url": urls[0]}}], parse_plan)
        content: list[dict] = []
        for k, (t, url) in enumerate(zip(idx, urls)):
            content.append({"type": "text", "text": f"Frame {k} (t={t / episode.fps:.2f}s)"})
            content.append({"type": "image_url", "image_url": {"url": url}})
        steps = "\n".join(f"{i + 1}. {a}" for i, a in enumerate(plan))
        content.append({"type": "text", "text": GROUNDING_PROMPT.format(
            n=len(idx), task=episode.task, duration=len(episode) / episode.fps, plan=steps)})
        segments = self._ask(content, lambda text: parse_grounding(text, plan, len(idx)))
        return {"plan": plan, "segments": [s.__dict__ for s in segments]}

    def annotate_many(self, episodes: list[Episode]) -> list[Annotation]:
        """Annotate episodes with up to ``concurrency`` requests in flight, in input order."""
        if self.concurrency == 1 or len(episodes) <= 1:
            return [self.annotate(e) for e in episodes]
        self._model_name()  # resolve once before the threads start
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self.annotate, episodes))
