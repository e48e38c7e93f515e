// SIEM sink form: show only the fields of the chosen kind (syslog: host, port,
// TLS; HTTPS: the URL). Without script every field shows and the server ignores
// the other kind's. (CSP: no inline script.)
(() => {
  const kind = document.querySelector("#sink-form select[name=kind]");
  if (!kind) return;
  const sync = () => {
    document.querySelectorAll("#sink-form [data-sink-kind]").forEach((input) => {
      const box = input.closest("div");
      if (box) box.hidden = input.dataset.sinkKind !== kind.value;
    });
  };
  kind.addEventListener("change", sync);
  sync();
})();
