"""Fixtures shared by test files (the older files keep their own)."""

import pytest

from tiny_checkpoints import tiny_bert


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A tiny BERT checkpoint (tests/tiny_checkpoints.py) for the tests that train from it; none changes it."""
    return tiny_bert(tmp_path_factory.mktemp("tiny-encoder") / "bert")
