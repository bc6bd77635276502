"""Page-wide layout rules: at phone width every control is a touch target of at least 44 px."""

from __future__ import annotations

#: Below this width the page is laid out for touch (the queue's cards switch at the same width).
PHONE_MAX_PX = 640
TOUCH_TARGET_PX = 44

# `!important`: Radix's size classes set the controls' minimum size themselves, and win over
# element selectors; this rule is for every control, whatever its size class.
LAYOUT_CSS = f"""
@media (max-width: {PHONE_MAX_PX}px) {{
  header button, main button, header select, main select, header input, main textarea,
  .rt-PopoverContent button {{
    min-height: {TOUCH_TARGET_PX}px !important;
  }}
  header .rt-TextFieldRoot {{ min-height: {TOUCH_TARGET_PX}px !important; }}
  header button.rt-IconButton, main button.rt-IconButton {{ min-width: {TOUCH_TARGET_PX}px !important; }}
}}
"""
