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
});
