// The flows list: read from the API, create a flow and open its editor.
(() => {
  const page = document.getElementById("flows-page");
  if (!page) return;
  const api = page.dataset.api;
  const base = page.dataset.editorUrl; // "/flows/"
  const status = document.getElementById("flows-status");
  const table = document.getElementById("flows-table");
  const rows = document.getElementById("flows-rows");
  const triggerLabels = {};
  document.querySelectorAll("#flow-trigger option").forEach((o) => { triggerLabels[o.value] = o.textContent; });
  const inboxNames = {};
  document.getElementById("inbox-names").content.querySelectorAll("option").forEach((o) => { inboxNames[o.value] = o.textContent; });

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  async function load() {
    // Keyset pages of up to 200, followed to the end; shown by name.
    const flows = [];
    let url = `${api}?page_size=200`;
    for (let pages = 0; url && pages < 50; pages++) {
      const { ok, data } = await window.ParleyApi.call("GET", url);
      if (!ok) { status.textContent = "Flows could not be loaded: " + window.ParleyApi.errorText(data); return; }
      flows.push(...(Array.isArray(data) ? data : (data.results || [])));
      url = Array.isArray(data) ? null : data.next;
    }
    flows.sort((a, b) => a.name.localeCompare(b.name));
    rows.replaceChildren();
    for (const flow of flows) {
      const tr = document.createElement("tr");
      const link = document.createElement("a");
      link.href = `${base}${flow.id}/`;
      link.textContent = flow.name;
      cell(tr, link);
      let trigger = triggerLabels[flow.trigger] || flow.trigger;
      if (flow.trigger === "keyword" && flow.keywords && flow.keywords.length) trigger += `: ${flow.keywords.join(", ")}`;
      if (flow.trigger === "intent" && flow.trigger_intent) trigger += `: ${flow.trigger_intent}`;
      cell(tr, trigger);
      cell(tr, (flow.inboxes || []).map((id) => inboxNames[id] || `#${id}`).join(", ") || "none");
      const live = flow.live_version;
      cell(tr, live ? `v${live.number}${live.published_at ? ", " + new Date(live.published_at).toLocaleString() : ""}` : "not published");
      const draft = flow.draft;
      cell(tr, draft ? `v${draft.number}, saved ${new Date(draft.updated_at).toLocaleString()}` : "none");
      if (flow.enabled === false) {
        tr.classList.add("muted");
        tr.firstChild.appendChild(document.createTextNode(" (switched off)"));
      }
      rows.appendChild(tr);
    }
    table.hidden = flows.length === 0;
    status.textContent = flows.length ? `${flows.length} flow${flows.length === 1 ? "" : "s"}.` : "No flows yet: create the first one below.";
  }

  document.getElementById("flow-create").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const error = document.getElementById("flow-create-error");
    error.textContent = "";
    const body = { name: form.elements.name.value.trim(), trigger: form.elements.trigger.value };
    const { ok, data } = await window.ParleyApi.call("POST", api, body);
    if (!ok) { error.textContent = "Not created: " + window.ParleyApi.errorText(data); return; }
    window.location.assign(`${base}${data.id}/`);
  });

  load();
})();
