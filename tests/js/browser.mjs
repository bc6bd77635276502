// Runs one of the page's scripts (rxapp/realtime/*.js) as the browser would, in a context
// of its own whose globals (window, the socket class, the clock, fetch...) the test provides.
import { readFileSync } from "node:fs";
import vm from "node:vm";

const SCRIPTS = new URL("../../rxapp/realtime/", import.meta.url);

/** The script's text with `replacements` applied, as the Python side fills its placeholders. */
export function source(name, replacements = {}) {
  let text = readFileSync(new URL(name, SCRIPTS), "utf8");
  for (const [placeholder, value] of Object.entries(replacements)) text = text.replaceAll(placeholder, value);
  return text;
}

/** Evaluates `code` with `globals` as its global scope (a scope it returned before: the same page); returns it. */
export function evaluate(code, globals, filename) {
  const context = vm.isContext(globals) ? globals : vm.createContext(globals);
  vm.runInContext(code, context, { filename });
  return context;
}

/** A clock the test moves by hand (`Date.now()` inside the script). */
export function manualClock(start = 1_000_000) {
  const clock = { ms: start, now: () => clock.ms, advance: (ms) => (clock.ms += ms) };
  return clock;
}
