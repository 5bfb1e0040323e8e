import pytest

from watchkeeper.config import Settings

pytest_plugins = ["dbfixtures"]


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """One pipeline for the session: models load once."""
    from watchkeeper import Pipeline

    return Pipeline(Settings(data_dir=tmp_path_factory.mktemp("wk-data")))
