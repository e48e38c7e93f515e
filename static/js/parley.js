// Site-wide behaviour, loaded on every page (CSP: no inline script or style).
//
// * the phone menu button opens and closes the navigation;
// * an open menu (<details class="menu">) closes on Escape or a click elsewhere;
// * a form whose submit button carries data-confirm asks first.
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
