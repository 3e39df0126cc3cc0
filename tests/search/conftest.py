from __future__ import annotations

from pathlib import Path

import pytest

from tests.search.trajectory import train_regression


@pytest.fixture(scope="session")
def regression_ckpts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("regression") / "ckpts"
    train_regression(folder)
    return folder
