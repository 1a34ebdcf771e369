import asyncio
import base64
import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from procvlm.models.base import ProgressModel, ProgressPrediction
from procvlm.serve.app import create_app


class MeanModel(ProgressModel):
    """Deterministic: progress = mean red value / 255 of the frame; counts its calls."""

    model_type = "test"

    def __init__(self):
        self.calls = 0
        self.model_calls = 0  # invocations of the model, whichever method the server uses

    def predict_batch(self, items, *, window=None, batch_size=None):
        self.model_calls += 1
        return [self._predict(s, t) for s, t, _ in items]

    def predict(self, episode, task=None, plan=None, *, window=8):
        self.model_calls += 1
        return self._predict(episode, task)

    def _predict(self, episode, task):
        self.calls += 1
        time.sleep(0.005)
        if hasattr(episode, "main_frames"):
            episode, task = episode.main_frames(), task or episode.task
        frames = np.stack([episode[i] for i in range(len(episode))])
        p = frames[..., 0].reshape(len(frames), -1).mean(1) / 255.0
        return ProgressPrediction(progress=p, stage=np.zeros(len(p)),
                                  remaining=[[task]] * len(p))

    def save_pretrained(self, directory):
        raise NotImplementedError


def png(value, size=8, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def server(serve_app):
    model = MeanModel()
    app = create_app(model, max_batch=16, max_queue=512, max_request_mb=0.05)
    return serve_app(app), model


def test_health_and_models(server):
    url, _ = server
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == "procvlm-test"


def test_hundred_concurrent_requests_with_bad_ones_beside_them(server):
    url, model = server

    async def go():
        async with httpx.AsyncClient(timeout=30) as client:
            good = [client.post(f"{url}/v1/progress",
                                json={"task": f"t{i}", "frames": [png(i), png(255 - i)]})
                    for i in range(100)]
            bad = [client.post(f"{url}/v1/progress", json={"task": "x",
                                                          "frames": [png(1), "nope!"]}),
                   client.post(f"{url}/v1/progress", json={"task": "x",
                                                          "frames": ["A" * 60000]}),
                   client.post(f"{url}/v1/progress", content=b"{oops")]
            return await asyncio.gather(*good, *bad)

    before, calls_before = model.calls, model.model_calls
    replies = asyncio.run(go())
    for i, r in enumerate(replies[:100]):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["progress"] == pytest.approx([i / 255, (255 - i) / 255], abs=1e-6)
        assert body["remaining"] == [[f"t{i}"]] * 2 and body["stage"] == [0, 0]
    assert replies[100].status_code == 422
    assert "frames[1] is not a base64 PNG/JPEG image" in replies[100].json()["error"]["message"]
    assert replies[101].status_code == 413
    assert replies[102].status_code == 400
    assert model.calls - before == 100
    health = httpx.get(f"{url}/health").json()
    assert health["most_requests_in_a_batch"] > 1  # concurrent requests shared model steps
    # batched: concurrent requests share model calls (max_batch=16 allows 7 at best)
    assert model.model_calls - calls_before < 50


@pytest.mark.parametrize("body,status,match", [
    ({"frames": [png(0)]}, 422, "task must be"),
    ({"task": "x", "frames": []}, 422, "frames must be"),
    ({"task": "x", "frames": [png(0), png(0, size=4)]}, 422, "frames\\[1\\] is 4x4"),
    ({"task": "x", "frames": [png(0)], "window": 0}, 422, "window"),
    ({"task": "x", "frames": [png(0)], "plan": "a"}, 422, "plan"),
    ({"dataset": 3, "episode": 0}, 422, "dataset must be"),
])
def test_bad_progress_requests(server, body, status, match):
    r = httpx.post(f"{server[0]}/v1/progress", json=body)
    assert r.status_code == status
    assert pytest.importorskip("re").search(match, r.json()["error"]["message"])


def test_chat_needs_a_vlm(server):
    r = httpx.post(f"{server[0]}/v1/chat/completions",
                   json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "cannot chat" in r.json()["error"]["message"]


def test_full_queue_answers_503():
    from fastapi.testclient import TestClient

    class Slow(MeanModel):
        def predict(self, *a, **k):
            time.sleep(0.3)
            return super().predict(*a, **k)

    app = create_app(Slow(), max_batch=1, max_queue=1)
    with TestClient(app) as client:
        async def go():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await asyncio.gather(*[c.post("/v1/progress", json={
                    "task": "x", "frames": [png(1)]}) for _ in range(6)])

        codes = sorted(r.status_code for r in client.portal.call(go))
    assert codes[0] == 200 and codes[-1] == 503


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A data root holding one dataset, a dataset outside it, and a symlink pointing out."""
    from procvlm.data import write_dataset
    from procvlm.training.data import synthetic_episodes

    base = tmp_path_factory.mktemp("roots")
    eps, _ = synthetic_episodes(1, 6, 16, seed=0)
    write_dataset(base / "root" / "ds", eps, video=False)
    write_dataset(base / "outside", eps, video=False)
    (base / "root" / "escape").symlink_to(base / "outside")
    return base


def _dataset_reply(app, dataset):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        return client.post("/v1/progress", json={"dataset": dataset, "episode": 0})


def test_datasets_are_refused_without_a_data_root(data_root, caplog):
    r = _dataset_reply(create_app(MeanModel()), str(data_root / "root" / "ds"))
    assert r.status_code == 403 and "--data-root" in r.json()["error"]["message"]
    assert "refused dataset" in caplog.text


def test_dataset_inside_the_data_root_is_scored(data_root):
    app = create_app(MeanModel(), data_root=data_root / "root")
    r = _dataset_reply(app, "ds")
    assert r.status_code == 200 and len(r.json()["progress"]) == 6
    assert _dataset_reply(app, str(data_root / "root" / "ds")).status_code == 200


@pytest.mark.parametrize("name,match", [("outside", "outside the server's data root"),
                                        ("escape", "outside the server's data root"),
                                        ("ds/../ds", "'..' is not allowed"),
                                        ("../outside", "'..' is not allowed")])
def test_paths_leaving_the_data_root_answer_403(data_root, name, match, caplog):
    app = create_app(MeanModel(), data_root=data_root / "root")
    path = str(data_root / "outside") if name == "outside" else name
    r = _dataset_reply(app, path)
    assert r.status_code == 403 and match in r.json()["error"]["message"]
    assert "refused dataset" in caplog.text


def test_prediction_json_carries_done_only_from_models_that_give_it():
    from procvlm.serve.app import prediction_json

    pred = ProgressPrediction([0.25, 1.0], [0, 1], [["a"], []])
    assert "done" not in prediction_json(pred)
    pred.done = np.array([0.1234567, 0.9], np.float32)
    body = prediction_json(pred)
    assert body["done"] == [0.123457, 0.9] and body["stage"] == [0, 1]
