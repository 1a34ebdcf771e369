"""Fixtures for the annotator tests: tiny synthetic episodes with known sub-step boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from procvlm.data.episode import ArrayFrames, Episode

MW_NAMES = (["hand_x", "hand_y", "hand_z", "gripper", "obj1_x", "obj1_y", "obj1_z",
             "obj1_qw", "obj1_qx", "obj1_qy", "obj1_qz", "obj2_x", "obj2_y", "obj2_z",
             "obj2_qw", "obj2_qx", "obj2_qy", "obj2_qz"]
            + [f"prev_{n}" for n in ["hand_x", "hand_y", "hand_z", "gripper", "obj1_x",
                                     "obj1_y", "obj1_z", "obj1_qw", "obj1_qx", "obj1_qy",
                                     "obj1_qz", "obj2_x", "obj2_y", "obj2_z", "obj2_qw",
                                     "obj2_qx", "obj2_qy", "obj2_qz"]]
            + ["goal_x", "goal_y", "goal_z"])


def _ramp(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return np.clip((t - t0) / (t1 - t0), 0.0, 1.0)


def pick_place_state(num_frames: int = 40, close_at: int = 10, open_at: int = 30,
                     with_object: bool = True, grip_on_object: float = 0.45) -> np.ndarray:
    """A MetaWorld-like 39-d trajectory: the hand reaches the puck (frames 0..close_at), the
    gripper closes (close_at..close_at+5), the hand carries the puck to the goal, and the
    gripper opens at ``open_at``."""
    t = np.arange(num_frames, dtype=np.float64)
    state = np.zeros((num_frames, 39))
    puck0, goal = np.array([0.0, 0.6, 0.02]), np.array([0.2, 0.8, 0.15])
    carry = _ramp(t, close_at + 5, open_at)
    reach = _ramp(t, 0, close_at)
    start = np.array([0.0, 0.4, 0.2])
    hand = start + reach[:, None] * (puck0 - start) + carry[:, None] * (goal - puck0)
    grip = 1.0 - (1.0 - grip_on_object) * _ramp(t, close_at, close_at + 5)
    grip = np.where(t >= open_at, grip_on_object + (1 - grip_on_object) * _ramp(t, open_at, open_at + 4), grip)
    state[:, 0:3] = hand
    state[:, 3] = grip
    if with_object:
        state[:, 4:7] = puck0 + carry[:, None] * (goal - puck0)
        state[:, 7] = 1.0
    state[:, 36:39] = goal
    return state


def make_episode(state: np.ndarray, *, task: str = "pick up the puck and place it at the goal",
                 plan: list[str] | None = None, success: bool | None = True,
                 state_names: list[str] | None = None, index: int = 0) -> Episode:
    frames = np.zeros((len(state), 8, 8, 3), dtype=np.uint8)
    frames[:, :, :, 0] = (np.arange(len(state)) * 5 % 255)[:, None, None]
    meta = {"state_names": state_names} if state_names is not None else {}
    return Episode(episode_index=index, task=task, fps=10.0, frames={"corner": ArrayFrames(frames)},
                   state=state.astype(np.float32), action=np.zeros((len(state), 4), np.float32),
                   success=success, plan=plan, meta=meta)


@pytest.fixture
def pick_place_episode() -> Episode:
    return make_episode(pick_place_state(), state_names=MW_NAMES)


@pytest.fixture
def synth():
    """The episode builders of this file (tests import nothing from conftest by name)."""
    import types

    return types.SimpleNamespace(make_episode=make_episode, pick_place_state=pick_place_state,
                                 MW_NAMES=MW_NAMES)


class ChatServer:
    """A loopback OpenAI-compatible chat server with scripted answers.

    ``answer(request_json) -> str`` makes each reply's content; requests are recorded, and the
    largest number of requests in flight at once is tracked.
    """

    def __init__(self, answer, delay: float = 0.0, model: str = "scripted-vlm") -> None:
        import http.server
        import json
        import threading
        import time

        self.answer, self.requests, self.model = answer, [], model
        self.in_flight = self.max_in_flight = 0
        lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, obj, status=200):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._send({"object": "list", "data": [{"id": server.model}]})
                else:
                    self._send({"error": "not found"}, 404)

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    server.requests.append(payload)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(delay)
                try:
                    content = server.answer(payload)
                finally:
                    with lock:
                        server.in_flight -= 1
                self._send({"id": "x", "object": "chat.completion", "model": payload["model"],
                            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                "role": "assistant", "content": content}}]})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    """Factory: ``chat_server(answer, delay=0.0)`` starts a server, closed after the test."""
    servers = []

    def start(answer, delay: float = 0.0) -> ChatServer:
        servers.append(ChatServer(answer, delay))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
