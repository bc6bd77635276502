"""The process's one `Core`, built from the environment when the app is imported."""

from __future__ import annotations

from core.logs import configure_logging
from core.root import Core
from core.settings import get_settings

settings = get_settings()
configure_logging(settings.log_format, settings.log_level, settings.secrets)
core = Core.build(settings)


def project_token(project_id: int) -> str:
    """The shared-state token every tab of one project links to (no underscores allowed)."""
    return f"project-{project_id}"
