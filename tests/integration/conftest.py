"""Tiny random-weight models (T5, Marian, M2M100, Llama), built once per test session, offline."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from tests.tiny_models import model_set

    return model_set(tmp_path_factory.mktemp("tiny_models"))
