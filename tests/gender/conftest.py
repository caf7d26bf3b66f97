"""Fixtures of the classifier's tests."""

import pytest

from gender.pipeline import prepare


@pytest.fixture(scope="session")
def prep(synth_data):
    """The session's synthetic faces, decoded at 32 px."""
    return prepare(synth_data, 32)
