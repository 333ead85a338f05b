"""The environment variable the stub endpoints' key is read from (stub_inputs.write_endpoints)."""

import pytest


@pytest.fixture
def stub_key(monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-stub")
