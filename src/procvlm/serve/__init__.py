"""procvlm.serve: progress scoring and OpenAI-compatible chat over HTTP (FastAPI + uvicorn)."""

from procvlm.serve.app import create_app
from procvlm.serve.server import serve

__all__ = ["create_app", "serve"]
