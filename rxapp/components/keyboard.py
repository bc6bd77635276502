"""Keyboard shortcuts and focus, for the whole page (`keyboard.js`).

Ctrl/Cmd+Enter in a `Prompt` presses its node's `Generate`; Ctrl/Cmd+Shift+Enter presses
`Run all stale`; Ctrl/Cmd+Z outside text fields presses `Undo` (inside one it undoes typing,
as everywhere). A shortcut presses the button itself, so it does exactly what a click does
(the optimistic row, a viewer's disabled button doing nothing). A new node added in this tab
takes the focus in its `Prompt`; in the lightbox ArrowLeft/ArrowRight press `Previous result` /
`Next result`, and closing it gives the focus back to the image that opened it.
"""

from __future__ import annotations

from pathlib import Path

import reflex as rx

SHORTCUTS_JS = Path(__file__).with_suffix(".js").read_text()
#: The lightbox's `onCloseAutoFocus`: focus returns to the element that opened it.
RETURN_FOCUS: rx.Var[str] = rx.Var("((e) => window.__shortcuts?.returnFocus(e))")


def keyboard_shortcuts() -> rx.Component:
    return rx.el.span(hidden=True, on_mount=rx.call_script(SHORTCUTS_JS))
