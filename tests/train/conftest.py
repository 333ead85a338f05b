"""Ray Train tests use the session `ray_local` fixture from tests/conftest.py."""
