import pytest


@pytest.fixture
def root(superuser):
    """The superuser who applies the files."""
    return superuser
