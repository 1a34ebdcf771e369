"""The VLM behind the server: chat completions, progress, and the vlm annotator end to end."""

import base64
import io

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
    # P(done) per frame, as the model predicts it outside the server
    shown = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(f))).convert("RGB"))
                      for f in frames])
    model = client.app.state.batcher.model
    np.testing.assert_allclose(body["done"], model.predict(shown, "push", window=2).done,
                               atol=1e-5)


@pytest.fixture(scope="module")
def live_url(client, serve_app):
    return serve_app(create_app(client.app.state.batcher.model, max_tokens=5)) + "/v1"


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


@pytest.fixture()
def end_token(client):
    """Set the served model's end token for one test (random weights never pick their own)."""
    gen_cfg = client.app.state.batcher.model.model.generation_config
    saved = gen_cfg.eos_token_id
    yield lambda ids: setattr(gen_cfg, "eos_token_id", ids)
    gen_cfg.eos_token_id = saved


def _ask(openai_client, max_tokens, **kw):
    return openai_client.chat.completions.create(
        model="x", max_tokens=max_tokens, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": _url()}},
            {"type": "text", "text": "How far along is the task?"}]}], **kw)


def test_openai_client_usage_and_finish_reason(live_url, client, end_token):
    openai = pytest.importorskip("openai")
    oc = openai.OpenAI(base_url=live_url, api_key="none")
    end_token([999_999])  # an id no answer contains: max_tokens cuts the answer
    cut = _ask(oc, 4)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 4 and cut.usage.prompt_tokens > 10
    assert cut.usage.total_tokens == cut.usage.prompt_tokens + 4
    end_token(list(range(len(client.app.state.batcher.model.tokenizer))))  # any token ends it
    ended = _ask(oc, 4)
    assert ended.choices[0].finish_reason == "stop" and ended.usage.completion_tokens == 1


def test_openai_client_streams_server_sent_events(live_url, end_token):
    openai = pytest.importorskip("openai")
    oc = openai.OpenAI(base_url=live_url, api_key="none")
    end_token([999_999])
    whole = _ask(oc, 5)
    chunks = list(_ask(oc, 5, stream=True, stream_options={"include_usage": True}))
    assert len(chunks) >= 3 and all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == "length" and chunks[-1].usage.completion_tokens == 5


def test_concurrent_requests_share_generation_steps(client):
    """Prompts of concurrent progress and chat requests go through shared model steps."""
    import asyncio

    app = client.app
    frames = [_url(v).split(",")[1] for v in (10, 20, 30, 40)]

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            progress = [c.post("/v1/progress", json={"task": f"t{i}", "frames": frames,
                                                     "window": 2}) for i in range(6)]
            return await asyncio.gather(*progress)

    before = app.state.batcher.batches
    replies = client.portal.call(go)
    assert all(r.status_code == 200 and len(r.json()["progress"]) == 4 for r in replies)
    # 24 frame prompts in batches of 16 from several requests, not one model call per request
    assert app.state.batcher.most_requests_in_a_batch > 1
    assert app.state.batcher.batches - before < 6
