"""Results drawn at the size they are shown: every `<img>` of a stored image picks a copy.

The store writes WebP copies beside each image (`core/media/store.py`, `DERIVATIVE_SIDES`), named by
appending `.w<side>.webp` to the original's name, so a copy's URL is the original's plus a
suffix. `src` stays the original's URL (what `Download` and the other views name); `srcset`
lists only the copies, so the browser fetches the smallest that covers `sizes` at the
screen's density and never the original. A node's result row also carries its pixel size and
ThumbHash: the card reserves the right box (`width`/`height`) and paints the decoded
placeholder (`thumbhash.js`) before a byte of the image arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import reflex as rx

from core.media.store import DERIVATIVE_SIDES, copy_suffix

_JS = Path(__file__).with_name("thumbhash.js").read_text()

#: How wide a card draws its result (the card is at most 340 px, less its padding): the copy's
#: choice, here and in the tabs' preload of a new result (`rxapp/realtime/room_store.js`).
CARD_IMAGE_SIZES = "(max-width: 380px) calc(100vw - 64px), 316px"


class _Placeholders(rx.Fragment):
    """Puts the ThumbHash decoder in the page's module, once however many images use it."""

    def add_custom_code(self) -> list[str]:
        return [_JS]


def _js(template: str, var: rx.Var) -> rx.Var:
    """A JS expression around `var`, keeping what `var` needs (a ClientStateVar's hooks)."""
    return rx.Var(template.format(var), _var_data=var._get_all_var_data())


def copy_url(url: rx.Var, side: int) -> rx.Var:
    return url + copy_suffix(side)


def copies(url: rx.Var) -> rx.Var:
    """The `srcset` of a stored image: its copies, by width."""
    entries = [copy_url(url, side) + f" {side}w" for side in DERIVATIVE_SIDES]
    joined = entries[0]
    for entry in entries[1:]:
        joined = joined + ", " + entry
    return joined


def stored_image(
    url: rx.Var,
    *,
    alt: rx.Var | str,
    sizes: str,
    pixels: tuple[rx.Var, rx.Var] | None = None,
    thumbhash: rx.Var | None = None,
    **props: Any,
) -> rx.Component:
    """An `<img>` of a stored image that loads the copy `sizes` calls for.

    `pixels` (the row's width and height, 0 when unknown) become the `width`/`height`
    attributes, which reserve its box before it loads; `thumbhash` paints its placeholder meanwhile.
    """
    attrs: dict[str, Any] = {}
    style: dict[str, Any] = {}
    if pixels is not None:
        attrs["width"] = _js("({} || undefined)", pixels[0])
        attrs["height"] = _js("({} || undefined)", pixels[1])
    if thumbhash is not None:
        background = _js("globalThis.thumbHashBackground({})", thumbhash)
        style = {"background_image": background, "background_size": "100% 100%"}
        attrs["onLoad"] = rx.Var("globalThis.dropPlaceholder")
    return rx.fragment(
        _Placeholders.create(),
        rx.image(
            src=url,
            src_set=copies(url),
            sizes=sizes,
            alt=alt,
            custom_attrs=attrs,
            style=style,
            # Another image, another element: the last one's load took its placeholder away
            # (`dropPlaceholder`), and a reused element would show the next one without any.
            key=url,
            **props,
        ),
    )


def enlarged_image(url: rx.Var, *, alt: rx.Var | str, **props: Any) -> rx.Component:
    """The lightbox's image: the 768-px copy at once, then the original once it has loaded."""
    return rx.fragment(
        _Placeholders.create(),
        rx.image(
            src=copy_url(url, max(DERIVATIVE_SIDES)),
            alt=alt,
            custom_attrs={"data-original": url, "onLoad": rx.Var("globalThis.swapToOriginal")},
            key=url,  # another result: a fresh element, not the last one's swapped source
            **props,
        ),
    )
