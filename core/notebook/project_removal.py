"""Deleting a project, for its owner: every row of it in one transaction, then its images.

The owner confirms by typing the project's name (a slip of the mouse deletes nothing). Every
member's tabs, and the owner's, learn at once that the project is gone (the same notice as a
removed member's: their tabs leave its room and their Project menus reread). An image goes
from disk once no other project uses it (`ProjectMedia`, which also covers uploads added
there); one still used elsewhere stays. The files go after the commit: a failed delete
removes nothing.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import col, select

from core.changes import ChangeWriter
from core.db import get_or_404
from core.errors import InvalidInput, NotAllowed
from core.logs import get_logger, log_step
from core.media.store import MediaStore
from models.tables import (
    ChangeEvent,
    FeedChange,
    FeedSighting,
    FeedTab,
    Invitation,
    Job,
    JobStep,
    MediaGrant,
    Membership,
    Node,
    NodeResult,
    PlanStep,
    Project,
    ProjectMedia,
    UndoStep,
)

log = get_logger("projects")


class ProjectRemoval:
    def __init__(self, writer: ChangeWriter, media: MediaStore) -> None:
        self.writer = writer
        self.media = media

    def delete(self, project_id: int, user_id: int, typed_name: str) -> None:
        with self.writer.transaction() as tx:
            project = get_or_404(tx.session, Project, project_id, lock=True)
            if project.owner_id != user_id:
                raise NotAllowed("Only the project's owner may delete it")
            if typed_name != project.name:
                raise InvalidInput("Type the project's name exactly to delete it")
            session = tx.session
            members = list(session.exec(select(Membership.user_id).where(Membership.project_id == project_id)))
            for member in [project.owner_id, *members]:
                tx.changed(project_id, member=member)  # after commit, their tabs learn their access ended
            names = set(session.exec(select(ProjectMedia.name).where(ProjectMedia.project_id == project_id)))
            nodes = select(Node.id).where(Node.project_id == project_id)
            jobs = select(Job.id).where(Job.project_id == project_id)
            for statement in (
                delete(NodeResult).where(col(NodeResult.node_id).in_(nodes)),
                delete(JobStep).where(col(JobStep.job_id).in_(jobs)),
                delete(Job).where(col(Job.project_id) == project_id),
                delete(PlanStep).where(col(PlanStep.project_id) == project_id),
                delete(UndoStep).where(col(UndoStep.project_id) == project_id),
                delete(Node).where(col(Node.project_id) == project_id),
                delete(Invitation).where(col(Invitation.project_id) == project_id),
                delete(Membership).where(col(Membership.project_id) == project_id),
                delete(ProjectMedia).where(col(ProjectMedia.project_id) == project_id),
                delete(FeedTab).where(col(FeedTab.project_id) == project_id),
                delete(FeedChange).where(col(FeedChange.project_id) == project_id),
                delete(FeedSighting).where(col(FeedSighting.project_id) == project_id),
                # Last of the feed: deleting nodes and members above wrote events of their own.
                delete(ChangeEvent).where(col(ChangeEvent.project_id) == project_id),
            ):
                session.exec(statement)  # type: ignore[call-overload]  # SQLModel types select only
            used = set(session.exec(select(ProjectMedia.name).where(col(ProjectMedia.name).in_(names))))
            unused = sorted(names - used)
            if unused:
                session.exec(delete(MediaGrant).where(col(MediaGrant.name).in_(unused)))  # type: ignore[call-overload]
            session.delete(project)
            tx.after_commit.append(lambda: self._remove_files(project_id, unused))

    def _remove_files(self, project_id: int, names: list[str]) -> None:
        for name in names:
            self.media.remove(name)
        log_step(log, "project.deleted", project_id=project_id, images_removed=len(names))
