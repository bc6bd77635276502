"""Results: what made each (for the lightbox), and `Use this result` bringing back its settings."""

from __future__ import annotations

from core.contract import NodeKind
from core.root import Core


def test_use_this_result_restores_the_prompt_and_settings_so_the_node_is_not_stale(core: Core, project_id: int) -> None:
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a pale moon", aspect_ratio="16:9", seed="7")
    (first,) = core.jobs.create_batch(node.id)
    assert core.jobs.complete(first.id, "/media/moon.png")
    core.canvas.update_node(node.id, prompt="a red sun", aspect_ratio="1:1")
    (second,) = core.jobs.create_batch(node.id)
    assert core.jobs.complete(second.id, "/media/sun.png")

    assert core.results.of_node(node.id) == ["/media/sun.png", "/media/moon.png"]
    moon = core.results.details(project_id, "/media/moon.png")
    assert (moon.prompt, moon.aspect_ratio, moon.model, moon.provider, moon.seed) == (
        "a pale moon",
        "16:9",
        "local/sketch",
        "local",
        "7",
    )
    assert moon.made_at

    core.notebook.use_result(node.id, "/media/moon.png", by=core.accounts.local_user().id)
    shown = next(n for n in core.canvas.snapshot(project_id).nodes if n.id == node.id)
    assert (shown.image_url, shown.prompt, shown.aspect_ratio, shown.freshness) == (
        "/media/moon.png",
        "a pale moon",
        "16:9",
        "",
    )
    core.undo.undo(project_id, core.accounts.local_user().id)
    back = next(n for n in core.canvas.snapshot(project_id).nodes if n.id == node.id)
    assert (back.image_url, back.prompt, back.aspect_ratio) == ("/media/sun.png", "a red sun", "1:1")
