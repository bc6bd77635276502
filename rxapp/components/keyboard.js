// Keyboard shortcuts and focus (keyboard.py says which and why). Runs once per page, on mount.
(() => {
  if (window.__shortcuts) return;
  const s = (window.__shortcuts = { opener: null, awaiting: null });
  const CARD = '[data-testid="node"]';
  const PROMPT = '[aria-label="Prompt"]';
  // A button by its accessible name: its aria-label, or else its text.
  const button = (root, name) =>
    root &&
    [...root.querySelectorAll("button")].find(
      (b) => (b.getAttribute("aria-label") ?? b.textContent.trim()) === name && !b.disabled,
    );
  const typing = (el) =>
    !!el && (el.isContentEditable || ["TEXTAREA", "INPUT", "SELECT"].includes(el.tagName));
  // Press a button as a click would: a field's pending text is flushed first (its debounced
  // change goes out on blur, before the button's event), then the cursor comes back.
  const press = (target, found) => {
    if (!found) return false;
    const field = typing(target) ? target : null;
    field?.blur();
    found.click();
    field?.focus();
    return true;
  };

  document.addEventListener(
    "keydown",
    (e) => {
      // The lightbox: ArrowLeft / ArrowRight step through the node's results (the focus may have
      // left it for the page when the button it was on became disabled at the end of the list).
      const step = { ArrowLeft: "Previous result", ArrowRight: "Next result" }[e.key];
      const dialog = step && document.querySelector('[role="dialog"]');
      if (dialog && !typing(e.target) && !e.ctrlKey && !e.metaKey && !e.altKey) {
        if (press(null, button(dialog, step))) e.preventDefault();
        return;
      }
      if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
      let done = false;
      if (e.key === "Enter" && e.shiftKey) done = press(e.target, button(document, "Run all stale"));
      else if (e.key === "Enter" && e.target?.matches?.(PROMPT))
        done = press(e.target, button(e.target.closest(CARD), "Generate"));
      else if (e.key.toLowerCase() === "z" && !e.shiftKey && !typing(e.target))
        done = press(null, button(document, "Undo")); // in a text field, Ctrl+Z undoes typing
      if (done) e.preventDefault();
    },
    true,
  );

  document.addEventListener(
    "click",
    (e) => {
      const target = e.target;
      // The result that opens the lightbox gets the focus back when it closes.
      const opener = target?.closest?.("[data-opens-result]");
      if (opener) s.opener = opener;
      // This tab's new node: its Prompt takes the focus when its card arrives.
      if (target?.closest?.('button[aria-label="Add text-to-image node"], button[aria-label="Add image edit node"]')) {
        const known = new Set([...document.querySelectorAll(CARD)].map((n) => n.dataset.nodeId));
        s.awaiting = { known, until: Date.now() + 10000 };
      }
    },
    true,
  );
  new MutationObserver(() => {
    const awaiting = s.awaiting;
    if (!awaiting) return;
    if (Date.now() > awaiting.until) s.awaiting = null;
    const card = [...document.querySelectorAll(CARD)].find((n) => !awaiting.known.has(n.dataset.nodeId));
    if (!card) return;
    s.awaiting = null;
    card.querySelector(PROMPT)?.focus();
  }).observe(document.body, { childList: true, subtree: true });

  // The lightbox's onCloseAutoFocus: back to the image that opened it, if it is still there.
  s.returnFocus = (e) => {
    if (!s.opener?.isConnected) return;
    e.preventDefault();
    s.opener.focus();
  };
})();
