// The agent inbox: keyboard shortcuts, a clean reply box after sending, no
// duplicate messages when a poll and a reply cross. (CSP: no inline script.)
(() => {
  const items = () => Array.from(document.querySelectorAll("#conversation-items .conv-item a"));
  const current = () => document.querySelector("#thread .thread")?.dataset.conversation;

  function move(step) {
    const links = items();
    if (!links.length) return;
    const at = links.findIndex((a) => a.closest(".conv-item").dataset.conversation === current());
    const next = links[Math.min(links.length - 1, Math.max(0, at + step))];
    if (next) next.click();
  }

  document.addEventListener("keydown", (event) => {
    const tag = (event.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || event.metaKey || event.ctrlKey || event.altKey) return;
    if (event.key === "j") { move(1); event.preventDefault(); }
    if (event.key === "k") { move(-1); event.preventDefault(); }
    if (event.key === "e") {
      const resolve = document.querySelector("#resolve-form button");
      if (resolve) { resolve.click(); event.preventDefault(); }
    }
  });

  document.addEventListener("click", (event) => {
    const back = event.target.closest(".back-to-list");
    const app = document.getElementById("inbox-app");
    if (!back || !app) return;
    event.preventDefault();
    app.classList.remove("has-thread");
    history.pushState({}, "", back.getAttribute("href"));
    document.querySelector("#conversation-items .conv-item.active a")?.focus();
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (form && form.id === "reply-form" && event.detail.successful) form.reset();
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "messages") {
      // Keep the latest rendering of a message (it carries its current delivery status).
      const seen = new Set();
      for (const row of Array.from(event.detail.target.querySelectorAll(".msg-row")).reverse()) {
        if (seen.has(row.id)) row.remove(); else seen.add(row.id);
      }
      event.detail.target.scrollTop = event.detail.target.scrollHeight;
    }
    if (event.detail.target && event.detail.target.id === "thread") {
      // On a phone the open thread replaces the list (CSS); "All conversations" brings it back.
      document.getElementById("inbox-app")?.classList.add("has-thread");
      const id = current();
      document.querySelectorAll("#conversation-items .conv-item").forEach((li) => {
        li.classList.toggle("active", li.dataset.conversation === id);
      });
    }
  });
})();
