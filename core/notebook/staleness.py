"""Which nodes are stale and why: marimo's rule, for results that arrive minutes later.

A node is stale when it never ran, when its prompt, model, ratio or inputs changed
after its current result was made, when a node it uses got a new current result, or
when a node it uses is stale itself. A node whose input has no result yet is waiting
for it. A run plan's row (`PlanStep`) says more: running, waiting for an input, or not
run because something upstream failed.

`judge` is the rule, on plain facts; `write_labels` reads a project's facts from the
database and writes each node's label (`Node.freshness`) in the caller's transaction,
so the label reaches every tab through the node's change event, and survives restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlmodel import Session, col, select

from core.changes import Transaction
from core.notebook.graph import topological_order
from models.tables import Job, Node, PlanStep, utcnow

RUNNING = "running"
WAITING = "waiting"
BLOCKED = "blocked"
#: A new node's label (marimo: a cell that never ran is stale).
NEVER_RUN = "Stale: never run"


@dataclass(frozen=True)
class NodeFacts:
    id: int
    prompt: str
    model: str
    aspect_ratio: str
    input_images: tuple[str, ...] = ()
    input_nodes: tuple[int, ...] = ()
    #: The job of the current result; None when the node has none.
    result_job_id: str | None = None


@dataclass(frozen=True)
class ResultFacts:
    """What the job that made a result was given."""

    prompt: str
    model: str
    aspect_ratio: str
    input_images: tuple[str, ...] = ()
    #: Input node id -> the job of that input's result it used.
    input_results: Mapping[int, str] | None = None


@dataclass(frozen=True)
class StepFacts:
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    #: Needs a run to be up to date.
    stale: bool
    #: What the node's card says ("" when up to date).
    label: str


FRESH = Verdict(False, "")


def judge(
    nodes: Mapping[int, NodeFacts], results: Mapping[str, ResultFacts], plan: Mapping[int, StepFacts]
) -> dict[int, Verdict]:
    """Every node's verdict; a node is judged after the nodes it uses."""
    uses = {n.id: [s for s in n.input_nodes if s in nodes] for n in nodes.values()}
    verdicts: dict[int, Verdict] = {}
    for node_id in topological_order(uses, sorted(nodes)):
        node = nodes[node_id]
        verdict = _own_verdict(node, nodes, results, verdicts)
        step = plan.get(node_id)
        if step is not None:
            verdict = Verdict(verdict.stale, _plan_label(node, step, nodes, verdicts, plan))
        verdicts[node_id] = verdict
    return verdicts


def _own_verdict(
    node: NodeFacts, nodes: Mapping[int, NodeFacts], results: Mapping[str, ResultFacts], judged: Mapping[int, Verdict]
) -> Verdict:
    missing = [s for s in node.input_nodes if s not in nodes]
    if missing:
        return Verdict(True, f"Stale: input #{missing[0]} was deleted")
    without_result = [s for s in node.input_nodes if nodes[s].result_job_id is None]
    if without_result:
        return Verdict(True, f"Waiting for #{without_result[0]}")
    made = results.get(node.result_job_id) if node.result_job_id else None
    if made is None:
        return Verdict(True, NEVER_RUN)
    used = dict(made.input_results or {})
    changed = [
        ("prompt", made.prompt != node.prompt),
        ("model", made.model != node.model),
        ("aspect ratio", made.aspect_ratio != node.aspect_ratio),
        ("inputs", set(used) != set(node.input_nodes) or _fixed(made) != node.input_images),
    ]
    for what, differs in changed:
        if differs:
            return Verdict(True, f"Stale: {what} changed")
    for source in node.input_nodes:
        if nodes[source].result_job_id != used[source]:
            return Verdict(True, f"Stale: #{source} has a new result")
    for source in node.input_nodes:
        if judged[source].stale:
            return Verdict(True, f"Stale: #{source} is stale")
    return FRESH


def _fixed(made: ResultFacts) -> tuple[str, ...]:
    """The fixed images (uploads) a job used: its images come fixed first, then one per input node."""
    used = len(made.input_results or {})
    return made.input_images[: len(made.input_images) - used]


def _plan_label(
    node: NodeFacts,
    step: StepFacts,
    nodes: Mapping[int, NodeFacts],
    judged: Mapping[int, Verdict],
    plan: Mapping[int, StepFacts],
) -> str:
    if step.status == RUNNING:
        return "Running"
    if step.status == BLOCKED:
        return step.reason
    for source in node.input_nodes:
        upstream = plan.get(source)
        if (upstream is not None and upstream.status != BLOCKED) or nodes[source].result_job_id is None:
            return f"Waiting for #{source}"
    return "Waiting to start"


# the database side ----------------------------------------------------------
def read_facts(
    session: Session,
    project_id: int,
    nodes: Iterable[Node] | None = None,
    plan: Mapping[int, StepFacts] | None = None,
) -> tuple[list[Node], dict[str, ResultFacts], Mapping[int, StepFacts]]:
    """The project's nodes (as rows, to write labels on), their results' jobs, its plan.

    `nodes`, `plan`: what the caller holds already (every node of the project, as `lock_nodes`
    loaded them; the plan as it stands), so they are not read again.
    """
    with session.no_autoflush:  # the caller's pending changes are what is judged
        rows = (
            list(nodes) if nodes is not None else list(session.exec(select(Node).where(Node.project_id == project_id)))
        )
        wanted = [n.result_job_id for n in rows if n.result_job_id]
        jobs: list[Job] = list(session.exec(select(Job).where(col(Job.id).in_(wanted)))) if wanted else []
        results = {
            job.id: ResultFacts(
                job.prompt,
                job.model,
                job.aspect_ratio,
                tuple(job.input_images),
                {int(k): v for k, v in job.input_results.items()},
            )
            for job in jobs
        }
        if plan is None:
            plan = {
                s.node_id: StepFacts(s.status, s.reason)
                for s in session.exec(select(PlanStep).where(PlanStep.project_id == project_id))
            }
    return rows, results, plan


def facts_of(node: Node) -> NodeFacts:
    assert node.id is not None
    return NodeFacts(
        node.id,
        node.prompt,
        node.model,
        node.aspect_ratio,
        tuple(node.input_images),
        tuple(node.input_nodes),
        node.result_job_id if node.image_path else None,
    )


def verdicts_of(session: Session, project_id: int) -> dict[int, Verdict]:
    rows, results, plan = read_facts(session, project_id)
    return judge({n.id: facts_of(n) for n in rows if n.id is not None}, results, plan)


def write_labels(
    tx: Transaction,
    project_id: int,
    nodes: Mapping[int, Node] | None = None,
    plan: Mapping[int, StepFacts] | None = None,
) -> dict[int, Verdict]:
    """Judge the project and write every changed label (a node event each); returns the verdicts.

    `nodes`, `plan`: as `read_facts` takes them, when the caller holds them.
    """
    rows, results, plan = read_facts(tx.session, project_id, nodes.values() if nodes is not None else None, plan)
    verdicts = judge({n.id: facts_of(n) for n in rows if n.id is not None}, results, plan)
    changed = False
    for row in rows:
        assert row.id is not None
        label = verdicts[row.id].label
        if row.freshness != label:
            row.freshness = label
            row.version += 1
            row.updated_at = utcnow()
            tx.session.add(row)
            changed = True
    if changed:
        tx.changed(project_id)
    return verdicts
