"""Deleting a project: owner only, confirmed by its name, every row of it, its unshared images."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlmodel import select

from core.contract import NodeKind
from core.errors import InvalidInput, NotAllowed, NotFound
from core.people.access import use_media
from core.root import Core
from models.tables import ChangeEvent, Job, Node, NodeResult


def _image(core: Core, colour: str) -> str:
    data = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(data, "PNG")
    return core.media.save(data.getvalue())


def test_the_owner_deletes_a_project_by_its_name_and_only_its_own_images_go(core: Core) -> None:
    owner = core.accounts.local_user()
    ed, _ = core.accounts.sign_up("ed@example.com", "long enough")
    doomed = core.canvas.create_project(owner.id, "Doomed")
    kept = core.canvas.create_project(owner.id, "Kept")
    core.sharing.add(doomed.id, "ed@example.com", "editor")
    only_here, shared = _image(core, "red"), _image(core, "blue")
    node = core.canvas.add_node(doomed.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a last image")
    job = core.jobs.create(node.id)
    assert core.jobs.complete(job.id, only_here)
    with core.db.session() as session:
        use_media(session, doomed.id, [shared])
        use_media(session, kept.id, [shared])
        session.commit()

    with pytest.raises(NotAllowed):
        core.removal.delete(doomed.id, ed.id, "Doomed")  # an editor may not
    with pytest.raises(InvalidInput, match="name exactly"):
        core.removal.delete(doomed.id, owner.id, "doomed")
    assert core.canvas.snapshot(doomed.id).nodes  # nothing changed

    core.removal.delete(doomed.id, owner.id, "Doomed")
    for user in (owner.id, ed.id):
        with pytest.raises(NotFound):
            core.access.project(user, doomed.id)
    with core.db.session() as session:
        assert session.exec(select(Node).where(Node.project_id == doomed.id)).all() == []
        assert session.exec(select(Job).where(Job.project_id == doomed.id)).all() == []
        assert session.exec(select(NodeResult)).all() == []
        assert session.exec(select(ChangeEvent).where(ChangeEvent.project_id == doomed.id)).all() == []
    assert core.media.file_for(only_here.removeprefix("/media/")) is None  # no project uses it: gone
    assert core.media.file_for(shared.removeprefix("/media/")) is not None  # "Kept" still uses it
    assert [p.name for p in core.sharing.projects_for(owner.id)] == ["Kept"]
