"""The service router: which parser and embedder a deployment uses, per mode.

MOCK never touches the network. REAL uses the configured paid or local provider and lets
its classified errors through (retried or deferred by the worker, never faked).
"""

from __future__ import annotations

from dataclasses import dataclass

from ingestflow.config import ServiceMode, Settings
from ingestflow.pipeline.parsing import LocalParser
from ingestflow.services.base import Embedder, Parser
from ingestflow.services.mock import HashingEmbedder


@dataclass(frozen=True)
class Services:
    parser: Parser
    embedder: Embedder


def mock_embedder(settings: Settings) -> Embedder:
    return HashingEmbedder(dimensions=settings.mock_embedding_dimensions)


def real_embedder(settings: Settings) -> Embedder:
    if settings.embeddings_provider == "local":
        from ingestflow.services.local_embedder import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder()
    from ingestflow.services.openai_embedder import OpenAIEmbedder

    assert settings.openai_api_key is not None  # enforced by Settings validation
    return OpenAIEmbedder(
        api_key=settings.openai_api_key.get_secret_value(),
        model=settings.openai_embedding_model,
        dimensions=settings.openai_embedding_dimensions,
        base_url=settings.openai_api_url,
        timeout=settings.openai_timeout_seconds,
    )


def real_parser(settings: Settings) -> Parser:
    if settings.parser_provider == "llamaparse":
        from ingestflow.services.llamaparse import LlamaParseParser

        assert settings.llamaparse_api_key is not None
        return LlamaParseParser(
            api_key=settings.llamaparse_api_key.get_secret_value(),
            base_url=settings.llamaparse_base_url,
            timeout=settings.llamaparse_timeout_seconds,
        )
    return LocalParser()


def build_services(settings: Settings) -> Services:
    embedder = (
        mock_embedder(settings)
        if settings.embeddings_service_mode is ServiceMode.MOCK
        else real_embedder(settings)
    )
    parser = (
        LocalParser()
        if settings.parser_service_mode is ServiceMode.MOCK
        else real_parser(settings)
    )
    return Services(parser=parser, embedder=embedder)
