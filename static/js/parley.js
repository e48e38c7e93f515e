// Site-wide behaviour, loaded on every page (CSP: no inline script or style).
//
// * the phone menu button opens and closes the navigation;
// * an open menu (<details class="menu">) closes on Escape or a click elsewhere;
// * a form whose submit button carries data-confirm asks first;
// * each cell of a table with a header row carries its column's name
//   (data-label; not a cell across columns), which narrow screens show above
//   the value, where the table becomes one block per row and hides its header.
(() => {
  const root = document.documentElement;
  root.classList.add("js");

  document.addEventListener("click", (event) => {
    const toggle = event.target.closest(".nav-toggle");
    if (toggle) {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      document.getElementById("topbar")?.classList.toggle("nav-open", open);
      return;
    }
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      menu.removeAttribute("open");
      menu.querySelector("summary")?.focus();
    });
  });

  // Column names on each cell, for narrow screens (rows added later too).
  const isEmpty = (cell) =>
    !cell.textContent.trim() && !cell.querySelector("input, select, textarea, button, img, svg");
  const labelCells = (table) => {
    const head = table.tHead && table.tHead.rows[0];
    if (!head) return;
    const names = [];
    for (const th of head.cells) {
      for (let i = 0; i < th.colSpan; i += 1) names.push(th.textContent.trim());
    }
    for (const body of table.tBodies) {
      for (const row of body.rows) {
        let column = 0;
        for (const cell of row.cells) {
          // A cell across columns ("No requests yet.") belongs to none of them;
          // an empty cell (no action on this row) needs no name over nothing.
          const name = cell.colSpan === 1 && !isEmpty(cell) ? names[column] : "";
          if (name && !cell.hasAttribute("data-label")) cell.dataset.label = name;
          column += cell.colSpan;
        }
      }
    }
  };
  const labelTables = () => {
    document.querySelectorAll("table.table").forEach((table) => {
      labelCells(table);
      new MutationObserver(() => labelCells(table)).observe(table, { childList: true, subtree: true });
    });
  };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", labelTables);
  } else {
    labelTables();
  }

  // Confirmation before irreversible or disruptive actions.
  document.addEventListener("submit", (event) => {
    const button = event.submitter;
    const question = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
})();
