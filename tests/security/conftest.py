import pytest


@pytest.fixture
def import_dir(db):
    """The import folder of the ``db`` fixture's data folder (the default HS_IMPORT_DIRS), created."""
    folder = db.parent / "import"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
