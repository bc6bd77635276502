"""Undo's restore and a project's deletion on both dialects: foreign keys, the node triggers'
events and the membership triggers all meet there (the unit suite runs them on SQLite)."""

from __future__ import annotations

from core.root import Core
from tests.test_project_removal import (
    test_the_owner_deletes_a_project_by_its_name_and_only_its_own_images_go as _delete_project,
)
from tests.test_undo import (
    test_undoing_a_delete_brings_the_node_back_with_its_history_jobs_and_users as _undo_delete,
)


async def test_undoing_a_delete_restores_the_node_on_both_dialects(any_core: Core) -> None:
    project = any_core.canvas.create_project(any_core.accounts.local_user().id, "undo")
    _undo_delete(any_core, project.id)


async def test_deleting_a_project_on_both_dialects(any_core: Core) -> None:
    _delete_project(any_core)
