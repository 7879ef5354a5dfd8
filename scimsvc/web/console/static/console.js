// The console's only script: copy buttons (the page works without it; the buttons stay hidden then).
// Their feedback comes in the page's language from data-copied and data-selected (English otherwise).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) continue;
    button.hidden = false;
    const label = button.textContent;
    button.addEventListener("click", async () => {
      const text = source.textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
      } catch {
        // No clipboard API (plain http on another host): select the text so Ctrl+C copies it.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = button.dataset.selected || "Selected: press Ctrl+C";
        setTimeout(() => { button.textContent = label; }, 3000);
        return;
      }
      button.textContent = button.dataset.copied || "Copied";
      setTimeout(() => { button.textContent = label; }, 2000);
    });
  }

  // A page that follows something changing (queue health; a change being applied) reloads itself every
  // data-refresh seconds, but not while someone types in a field; its .refresh-toggle button pauses it.
  const refreshing = document.querySelector("[data-refresh]");
  if (refreshing) {
    const seconds = Math.max(2, Number(refreshing.dataset.refresh) || 5);
    const toggle = refreshing.querySelector("button.refresh-toggle");
    let paused = false;
    const busy = () => document.activeElement && document.activeElement.matches("input, select, textarea");
    const tick = () => {
      if (!paused && !busy()) {
        window.location.reload();
        return;
      }
      window.setTimeout(tick, seconds * 1000);
    };
    window.setTimeout(tick, seconds * 1000);
    if (toggle) {
      const pauseLabel = toggle.textContent;
      toggle.hidden = false;
      toggle.setAttribute("aria-pressed", "false");
      toggle.addEventListener("click", () => {
        paused = !paused;
        toggle.textContent = paused ? toggle.dataset.resume || "Resume updates" : pauseLabel;
        toggle.setAttribute("aria-pressed", String(paused));
      });
    }
  }
});
