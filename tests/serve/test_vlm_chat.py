"""The VLM behind the server: chat completions, progress, and the vlm annotator end to end."""

import base64
import io
import importlib.util

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from procvlm.models.vlm.modeling_vlm import VLMProgressModel
from procvlm.models.vlm.tiny import build_tiny_vlm
from procvlm.serve.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    base = build_tiny_vlm(tmp_path_factory.mktemp("srv") / "m", "qwen3_vl")
    model = VLMProgressModel.from_pretrained(base, max_new_tokens=5)
    with TestClient(create_app(model, max_tokens=5)) as c:
        yield c


def _url(v=30):
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), v, np.uint8)).save(buf, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def test_chat_completion_with_images(client):
    r = client.post("/v1/chat/completions", json={"model": "x", "max_tokens": 3, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _url()}},
                                     {"type": "text", "text": "What is done?"}]}]})
    assert r.status_code == 200, r.text
    msg = r.json()["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str)


def test_chat_bad_image_is_422(client):
    r = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x,zz"}}]}]})
    assert r.status_code == 422 and "image_url" in r.json()["error"]["message"]


def test_progress_with_vlm(client):
    frames = [_url(v).split(",")[1] for v in (10, 20, 30)]
    r = client.post("/v1/progress", json={"task": "push", "frames": frames, "window": 2})
    body = r.json()
    assert r.status_code == 200 and len(body["progress"]) == 3 and len(body["text"]) == 3


@pytest.fixture(scope="module")
def live_url(client):
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(client.app.state.batcher.model, max_tokens=5)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    thread.join(5)


@pytest.mark.skipif(importlib.util.find_spec("procvlm.annotate.vlm") is None,
                    reason="procvlm.annotate.vlm not written yet")
def test_vlm_annotator_end_to_end(live_url):
    from procvlm.annotate.vlm import VLMAnnotator
    from procvlm.data.episode import ArrayFrames, Episode
    from procvlm.errors import ProcvlmError

    frames = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3), np.uint8)
    ep = Episode(episode_index=0, task="push the puck", fps=10.0,
                 frames={"corner": ArrayFrames(frames)}, state=np.zeros((6, 2), np.float32),
                 action=np.zeros((6, 2), np.float32))
    ann = VLMAnnotator(base_url=live_url, num_frames=2, max_retries=1, image_size=16)
    # A random-weight model answers gibberish: the annotator must list the model, send its
    # images, get OpenAI-shaped replies, retry with the bad answer in the conversation, and
    # report that no valid answer came (not a transport or HTTP error).
    with pytest.raises(ProcvlmError, match="gave no valid answer in 2 attempts"):
        ann.annotate(ep)
