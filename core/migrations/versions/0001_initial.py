"""Initial schema, and the triggers that write the change feed.

Every insert, visible update and delete of a job or node, a project's creation and
rename, and an announced timeline step bump `project.last_seq` and write a
`changeevent` with that number, in the transaction of the change itself. So every
writer feeds the tabs: this app, another worker process, or someone in psql.
On PostgreSQL the trigger also sends `NOTIFY canvas_changes` with a small JSON
payload (ids only: NOTIFY payloads must stay under 8000 bytes; subscribers fetch rows).

Accounts, sessions, image grants and applied webhook deliveries are tables without
events: no tab renders them.

Updates that touch only columns tabs never see (poll schedule, leases, the step
counter, `updated_at`) write no event.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Job columns a tab shows or needs; an update that changes none of them is not an event.
JOB_VISIBLE = (
    "project_id",
    "node_id",
    "provider",
    "model",
    "prompt",
    "aspect_ratio",
    "input_images",
    "status",
    "version",
    "provider_task_id",
    "provider_handle",
    "progress",
    "client_request_id",
    "retry_of",
    "error",
    "image_path",
    "created_at",
    "submitted_at",
    "finished_at",
)
JSON_COLUMNS = {"input_images", "provider_handle"}

#: (trigger, table, events, WHEN condition or "", entity, project id expression, entity id expression, op)
#: Expressions use NEW/OLD; the project id of an announced step is looked up from its job.
STEP_PROJECT = "(SELECT project_id FROM job WHERE id = NEW.job_id)"


def _triggers(dialect: str) -> list[tuple[str, str, str, str, str, str, str, str]]:
    return [
        ("project_inserted", "project", "INSERT", "", "project", "NEW.id", "NEW.id", "upsert"),
        ("project_renamed", "project", "UPDATE", _differs(("name",), dialect), "project", "NEW.id", "NEW.id", "upsert"),
        ("node_inserted", "node", "INSERT", "", "node", "NEW.project_id", "NEW.id", "upsert"),
        ("node_updated", "node", "UPDATE", "", "node", "NEW.project_id", "NEW.id", "upsert"),
        ("node_deleted", "node", "DELETE", "", "node", "OLD.project_id", "OLD.id", "delete"),
        ("job_inserted", "job", "INSERT", "", "job", "NEW.project_id", "NEW.id", "upsert"),
        ("job_updated", "job", "UPDATE", _differs(JOB_VISIBLE, dialect), "job", "NEW.project_id", "NEW.id", "upsert"),
        ("job_deleted", "job", "DELETE", "", "job", "OLD.project_id", "OLD.id", "delete"),
        ("jobstep_announced", "jobstep", "INSERT", "NEW.announced", "job", STEP_PROJECT, "NEW.job_id", "upsert"),
    ]


def _differs(columns: tuple[str, ...], dialect: str) -> str:
    if dialect == "postgresql":  # json has no equality operator: compare its text
        cast = {c: "::text" if c in JSON_COLUMNS else "" for c in columns}
        return " OR ".join(f"NEW.{c}{cast[c]} IS DISTINCT FROM OLD.{c}{cast[c]}" for c in columns)
    return " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)


PG_RECORD_CHANGE = """
CREATE FUNCTION canvas_record_change(p_project integer, p_entity text, p_id text, p_op text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_seq integer;
BEGIN
    -- The row lock on the project orders its events: a later transaction waits for this one.
    UPDATE project SET last_seq = last_seq + 1 WHERE id = p_project RETURNING last_seq INTO v_seq;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO changeevent (project_id, seq, entity, entity_id, op, created_at)
    VALUES (p_project, v_seq, p_entity, p_id, p_op, clock_timestamp());
    PERFORM pg_notify('canvas_changes', json_build_object(
        'project_id', p_project, 'seq', v_seq, 'entity', p_entity, 'id', p_id, 'op', p_op)::text);
END $$
"""


def _create_pg(name: str, table: str, event: str, when: str, entity: str, project: str, key: str, op_: str) -> None:
    op.execute(
        f"""
CREATE FUNCTION canvas_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM canvas_record_change({project}, '{entity}', ({key})::text, '{op_}');
    RETURN NULL;
END $$
"""
    )
    condition = f"WHEN ({when})" if when else ""
    op.execute(
        f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {condition} EXECUTE FUNCTION canvas_{name}()"
    )


def _create_sqlite(name: str, table: str, event: str, when: str, entity: str, project: str, key: str, op_: str) -> None:
    condition = f"WHEN {when}" if when else ""
    op.execute(
        f"""
CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {condition}
BEGIN
    UPDATE project SET last_seq = last_seq + 1 WHERE id = {project};
    INSERT INTO changeevent (project_id, seq, entity, entity_id, op, created_at)
    SELECT id, last_seq, '{entity}', {key}, '{op_}', strftime('%Y-%m-%d %H:%M:%f', 'now')
    FROM project WHERE id = {project};
END
"""
    )


def upgrade() -> None:
    _create_tables()
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(PG_RECORD_CHANGE)
    for trigger in _triggers(dialect):
        (_create_pg if dialect == "postgresql" else _create_sqlite)(*trigger)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, *_ in _triggers(dialect):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if dialect == "postgresql" else ""))
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS canvas_{name}()")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS canvas_record_change(integer, text, text, text)")
    for table in (
        "webhookdelivery",
        "mediagrant",
        "localtask",
        "noderesult",
        "jobstep",
        "changeevent",
        "job",
        "node",
        "project",
        "authsession",
        "user",
    ):
        op.drop_table(table)
    if dialect == "postgresql":
        op.execute("DROP TYPE IF EXISTS jobstatus")
        op.execute("DROP TYPE IF EXISTS nodekind")


def _create_tables() -> None:
    moment = sa.DateTime(timezone=True)
    _create_account_tables(moment)
    op.create_table(
        "project",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_project_owner_id", "project", ["owner_id"])
    op.create_table(
        "changeevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("entity_id", sa.String(), nullable=False),
        sa.Column("op", sa.String(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "seq"),
    )
    op.create_index("ix_changeevent_project_id", "changeevent", ["project_id"])
    op.create_table(
        "node",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Enum("TEXT_TO_IMAGE", "IMAGE_EDIT", name="nodekind"), nullable=False),
        sa.Column("prompt", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("aspect_ratio", sa.String(), nullable=False),
        sa.Column("input_images", sa.JSON(), nullable=False),
        sa.Column("image_path", sa.String(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("updated_at", moment, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_node_project_id", "node", ["project_id"])
    status = sa.Enum("QUEUED", "SUBMITTED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", name="jobstatus")
    op.create_table(
        "job",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("prompt", sa.String(), nullable=False),
        sa.Column("aspect_ratio", sa.String(), nullable=False),
        sa.Column("input_images", sa.JSON(), nullable=False),
        sa.Column("status", status, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("provider_task_id", sa.String(), nullable=True),
        sa.Column("provider_handle", sa.JSON(), nullable=False),
        sa.Column("progress", sa.String(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("callback_token", sa.String(), nullable=False),
        sa.Column("client_request_id", sa.String(), nullable=True),
        sa.Column("retry_of", sa.String(), nullable=True),
        sa.Column("poll_attempts", sa.Integer(), nullable=False),
        sa.Column("next_poll_at", moment, nullable=True),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("lease_until", moment, nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("image_path", sa.String(), nullable=True),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("submitted_at", moment, nullable=True),
        sa.Column("finished_at", moment, nullable=True),
        sa.Column("updated_at", moment, nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_client_request_id", "job", ["client_request_id"], unique=True)
    op.create_index("ix_job_next_poll_at", "job", ["next_poll_at"])
    op.create_index("ix_job_node_id", "job", ["node_id"])
    op.create_index("ix_job_project_id", "job", ["project_id"])
    op.create_index("ix_job_provider_task_id", "job", ["provider_task_id"])
    op.create_table(
        "jobstep",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("step", sa.String(), nullable=False),
        sa.Column("at", moment, nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_jobstep_job_id", "jobstep", ["job_id"])
    op.create_table(
        "noderesult",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("image_path", sa.String(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_noderesult_node_id", "noderesult", ["node_id"])
    op.create_table(
        "localtask",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("result_url", sa.String(), nullable=True),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("lease_until", moment, nullable=True),
        sa.Column("created_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_localtask_lease_until", "localtask", ["lease_until"])


def _create_account_tables(moment: sa.DateTime) -> None:
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_user_email", "user", ["email"], unique=True)
    op.create_table(
        "authsession",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("expires_at", moment, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_authsession_user_id", "authsession", ["user_id"])
    op.create_table(
        "mediagrant",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("name", "user_id"),
    )
    op.create_table(
        "webhookdelivery",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("received_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint"),
    )
    op.create_index("ix_webhookdelivery_job_id", "webhookdelivery", ["job_id"])
