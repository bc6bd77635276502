"""Delete project: the owner confirms by typing its name; every tab of it learns at once."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from e2e.helpers import open_canvas


def test_the_owner_deletes_a_project_after_typing_its_name(browser: Browser, project_url: str) -> None:
    a = browser.new_context().new_page()
    open_canvas(a, project_url)
    b = browser.new_context().new_page()
    open_canvas(b, project_url)
    name = a.get_by_label("Project name").input_value()

    a.get_by_role("button", name="Delete project").click()
    dialog = a.get_by_role("alertdialog")
    confirm = dialog.get_by_role("button", name="Delete project")
    field = dialog.get_by_label("Type the project's name to confirm")
    expect(confirm).to_be_disabled()
    field.fill(name.lower() + "x")
    expect(confirm).to_be_disabled()
    field.fill(name)
    confirm.click()

    a.wait_for_url(lambda url: url != project_url and re.search(r"/p/\d+$", url) is not None)
    expect(a.get_by_label("Project name")).not_to_have_value(name)
    expect(a.get_by_label("Project", exact=True)).not_to_contain_text(name)
    expect(b.get_by_test_id("access-ended")).to_be_visible()  # the other tab learns at once
    b.reload()
    expect(b.get_by_text(re.compile(r"Project \d+ does not exist"))).to_be_visible()
