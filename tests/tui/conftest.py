"""Fixtures for the TUI tests: apps on the shared tiny-random session."""
import pytest

from specscope.tui.app import make_app


@pytest.fixture
def make(tiny_session):
    """make(**options) -> an app on the shared tiny-random session, timings hidden."""

    def build(**options):
        options.setdefault("snapshot", True)
        return make_app(session=tiny_session, **options)

    return build
