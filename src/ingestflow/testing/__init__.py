"""Fake providers speaking the real wire formats, for tests and for users' own checks:
``FakeOpenAI`` (embeddings), ``FakeLlamaParse`` (parsing) and ``FakeCohere`` (reranking),
each a real HTTP server on loopback with fault injection. ``ingestflow fake-providers``
runs all three."""

from ingestflow.testing.fake_cohere import FakeCohere
from ingestflow.testing.fake_llamaparse import FakeLlamaParse
from ingestflow.testing.fake_openai import FakeOpenAI

__all__ = ["FakeCohere", "FakeLlamaParse", "FakeOpenAI"]
