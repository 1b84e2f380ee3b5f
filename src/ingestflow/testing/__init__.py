"""Fake providers speaking the real wire formats, for tests and for users' own checks:
``FakeOpenAI`` (embeddings) and ``FakeLlamaParse`` (parsing), each a real HTTP server on
loopback with fault injection. ``ingestflow fake-providers`` runs both."""

from ingestflow.testing.fake_llamaparse import FakeLlamaParse
from ingestflow.testing.fake_openai import FakeOpenAI

__all__ = ["FakeLlamaParse", "FakeOpenAI"]
