"""Settings: environment names, layered dotenv files, validation messages, secret masking."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ingestflow.config import ConfigError, ServiceMode, Settings, load_settings

SECRET = "sk-test-THIS-MUST-NEVER-LEAK-1234567890"
CONFIG_VARS = ("SERVICE_MODE", "EMBEDDINGS_MODE", "PARSER_MODE", "ENVIRONMENT", "OPENAI_API_KEY",
               "OPENAI_API_URL", "OPENAI_BASE_URL", "LLAMAPARSE_API_KEY", "LLAMA_CLOUD_API_KEY",
               "INGESTFLOW_HOME", "DATABASE_URL", "EMBEDDINGS_PROVIDER", "PARSER_PROVIDER",
               "OPENAI_EMBEDDING_MODEL", "DAILY_COST_LIMIT_OPENAI")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in CONFIG_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_offline_mock() -> None:
    s = load_settings()
    assert s.embeddings_service_mode is ServiceMode.MOCK and s.parser_service_mode is ServiceMode.MOCK
    assert s.database_url is None and s.openai_embedding_model == "text-embedding-3-small"


def test_modes_are_case_insensitive_with_per_service_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_MODE", "hybrid")
    monkeypatch.setenv("PARSER_MODE", "Mock")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    s = load_settings()
    assert s.embeddings_service_mode is ServiceMode.HYBRID
    assert s.parser_service_mode is ServiceMode.MOCK


def test_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLAMA_CLOUD_API_KEY", "llx-alias-key")
    s = load_settings()
    assert s.openai_api_url == "http://127.0.0.1:9/v1"
    assert s.llamaparse_api_key is not None and s.llamaparse_api_key.get_secret_value() == "llx-alias-key"


def test_dotenv_layering_environment_file_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".env").write_text("CHUNK_MAX_TOKENS=300\nDAILY_COST_LIMIT_OPENAI=1.5\n")
    (home / ".env.staging").write_text("CHUNK_MAX_TOKENS=400\n")
    monkeypatch.setenv("INGESTFLOW_HOME", str(home))
    monkeypatch.setenv("ENVIRONMENT", "staging")
    s = load_settings()
    assert s.chunk_max_tokens == 400 and s.daily_cost_limit_openai == 1.5
    monkeypatch.setenv("CHUNK_MAX_TOKENS", "500")  # the real environment wins over files
    assert load_settings().chunk_max_tokens == 500


def test_real_without_key_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_MODE", "REAL")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_settings()
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("PARSER_PROVIDER", "llamaparse")
    with pytest.raises(ConfigError, match="LLAMAPARSE_API_KEY"):
        load_settings()


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_MODE", "SOMETIMES")
    with pytest.raises(ConfigError, match="SERVICE_MODE"):
        load_settings()
    monkeypatch.setenv("SERVICE_MODE", "MOCK")
    monkeypatch.setenv("DAILY_COST_LIMIT_OPENAI", "-3")
    with pytest.raises(ConfigError, match="DAILY_COST_LIMIT_OPENAI"):
        load_settings()
    monkeypatch.delenv("DAILY_COST_LIMIT_OPENAI")
    monkeypatch.setenv("HNSW_M", "32")  # with the default HNSW_EF_CONSTRUCTION, under 2 x m
    monkeypatch.setenv("HNSW_EF_CONSTRUCTION", "40")
    with pytest.raises(ConfigError, match="HNSW_EF_CONSTRUCTION must be at least twice HNSW_M"):
        load_settings()


def test_production_refuses_hybrid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SERVICE_MODE", "HYBRID")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(ConfigError, match="production refuses HYBRID"):
        load_settings()


def test_unknown_model_or_size_fails_in_real_mode_naming_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_MODE", "REAL")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_EMBEDDING_MODEL", "text-embedding-9-mega")
    with pytest.raises(ConfigError, match="unknown OpenAI embedding model.*text-embedding-3-small"):
        load_settings()
    monkeypatch.setenv("OPENAI_EMBEDDING_MODEL", "text-embedding-ada-002")
    monkeypatch.setenv("OPENAI_EMBEDDING_DIMENSIONS", "512")
    with pytest.raises(ConfigError, match="cannot return 512 dimensions"):
        load_settings()


def test_a_price_override_applies_and_the_batch_price_stays_half(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingestflow.catalogue import openai_model
    from ingestflow.services.costs import embedding_cost, priced

    monkeypatch.setenv("OPENAI_PRICE_PER_MTOK", "0.5")
    model = priced(openai_model("text-embedding-3-small"), load_settings())
    assert embedding_cost(model, 2_000_000) == 1
    assert embedding_cost(model, 2_000_000, batch=True) == Decimal("0.5")


def test_paid_services_are_capped_by_default_and_lifted_only_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_MODE", "REAL")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    s = load_settings()
    assert (s.daily_cost_limit_openai, s.hourly_rate_limit_openai) == (5.00, 100)
    assert s.daily_cost_limit_llamaparse == 5.00
    monkeypatch.setenv("DAILY_COST_LIMIT_OPENAI", "none")
    monkeypatch.setenv("HOURLY_RATE_LIMIT_OPENAI", "None")
    s = load_settings()
    assert (s.daily_cost_limit_openai, s.hourly_rate_limit_openai) == (None, None)
    monkeypatch.setenv("DAILY_COST_LIMIT_OPENAI", "")  # an empty value is not a way to lift it
    with pytest.raises(ConfigError, match="DAILY_COST_LIMIT_OPENAI"):
        load_settings()


def test_secrets_are_masked_in_repr_and_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2-db-password@db/app")
    s = load_settings()
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
    assert "hunter2-db-password" not in repr(s)
    assert SECRET in s.secret_values() and "hunter2-db-password" in s.secret_values()


def test_the_configured_space_is_known_without_building_the_embedder(settings: Settings) -> None:
    """``status`` names the configured space from the catalogue; it must be the space the
    embedder itself writes into, in every mode."""
    from ingestflow.services.router import build_services
    from ingestflow.store.database import Database

    assert settings.database_url is not None
    db = Database(settings.database_url.get_secret_value(), max_size=1)
    for extra in ({"mock_embedding_dimensions": 384},
                  {"service_mode": ServiceMode.REAL, "openai_api_key": "sk-x", "openai_embedding_dimensions": 512},
                  {"service_mode": ServiceMode.REAL, "openai_api_key": "sk-x",
                   "openai_embedding_model": "text-embedding-ada-002"},
                  {"service_mode": ServiceMode.REAL, "embeddings_provider": "local"}):
        s = Settings(**{**settings.model_dump(), **extra})
        services = build_services(s, db, owner="test")
        e, spec = services.embedder, services.embedder_spec
        assert (spec.provider, spec.name, spec.dimensions) == (e.provider, e.model, e.dimensions), extra
