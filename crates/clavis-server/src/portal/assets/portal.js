// Clavis portal enhancements. Every page works without this file: it adds copy buttons, turns the
// one-time secret dialog into a modal, and asks before destructive actions.
"use strict";
document.addEventListener("click", (event) => {
  const copy = event.target.closest("button[data-copy]");
  if (copy) {
    const source = document.querySelector(copy.dataset.copy);
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent).then(
        () => { copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy"; }, 2000); },
        () => { copy.textContent = "Select and copy"; }
      );
    }
    return;
  }
  const back = event.target.closest("a[data-back]");
  if (back && history.length > 1) {
    event.preventDefault();
    history.back();
  }
});
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", () => {
  // A page that answers a form post and shows a value once (a new client secret, a revealed vault
  // value): make its history entry a plain GET, so a reload neither posts again nor shows it again.
  if (document.querySelector("[data-once]")) {
    history.replaceState(null, "", location.pathname);
  }
  for (const dialog of document.querySelectorAll("dialog[data-modal][open]")) {
    dialog.close();
    dialog.showModal();
  }
});
