// The flow editor: a Drawflow canvas over the graph of docs/bots-flows.md.
//
// The graph ({nodes, edges}) is the source of truth; Drawflow only draws it and
// reports what the mouse did. Undo/redo keep snapshots of the graph; the draft
// is saved through the API a moment after each change. No inline script or
// style: positions are set through the CSSOM (element.style), which the CSP allows.
(() => {
  const root = document.getElementById("flow-editor");
  if (!root || typeof window.Drawflow !== "function") return;
  const API = root.dataset.api;
  const call = window.ParleyApi.call;
  const errorText = window.ParleyApi.errorText;
  const $ = (id) => document.getElementById(id);

  // --- node types -----------------------------------------------------------------------------
  const LABELS = {
    start: "Start", send: "Send message", ask: "Ask", condition: "Condition", set: "Set variable",
    intent: "Intent router", kb_answer: "Knowledge answer", ai_answer: "AI answer",
    http: "HTTP request", handoff: "Hand off", end: "End",
  };
  const STATIC_PORTS = {
    start: ["next"], send: ["next"], ask: ["next", "fallback"], condition: ["yes", "no"],
    set: ["next"], kb_answer: ["answered", "unknown"], ai_answer: ["answered", "handoff"],
    http: ["ok", "error"], handoff: [], end: [],
  };
  function portsOf(node) {
    if (node.type === "intent") {
      const intents = Array.isArray(node.config.intents) ? node.config.intents : [];
      return intents.map((i) => `intent:${i.name}`).concat(["fallback"]);
    }
    return STATIC_PORTS[node.type] || [];
  }
  const hasInput = (type) => type !== "start";
  const DEFAULTS = {
    start: () => ({}),
    send: () => ({ text: "" }),
    ask: () => ({ text: "", kind: "text", variable: "" }),
    condition: () => ({ kind: "variable", variable: "", op: "eq", value: "" }),
    set: () => ({ variable: "", value: "" }),
    intent: () => ({ intents: [], threshold: 0.5 }),
    kb_answer: () => ({}),
    ai_answer: () => ({}),
    http: () => ({ method: "GET", url: "" }),
    handoff: () => ({ inbox: null, note: "" }),
    end: () => ({}),
  };

  const OPS = ["eq", "ne", "contains", "gt", "lt", "set", "unset", "matches"];
  const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const isCond = (kinds) => (c) => kinds.includes(c.kind);
  // The side panel's fields per type. kind: text | textarea | select | number | lines | csv | map | days | inbox
  const FIELDS = {
    send: [
      { key: "text", label: "Text", kind: "textarea", hint: "Variables: {{contact.name}}, {{message}}, your own." },
      { key: "buttons", label: "Buttons or quick replies (one per line)", kind: "lines", optional: true },
      { key: "media_url", label: "Media link (https)", kind: "text", optional: true },
    ],
    ask: [
      { key: "text", label: "Question", kind: "textarea" },
      { key: "kind", label: "Answer kind", kind: "select", options: ["text", "email", "phone", "number", "date", "choice", "regex"] },
      { key: "choices", label: "Choices (one per line)", kind: "lines", show: isCond(["choice"]) },
      { key: "pattern", label: "Pattern (regular expression)", kind: "text", show: isCond(["regex"]) },
      { key: "variable", label: "Save the answer in variable", kind: "text" },
      { key: "retries", label: "Retries (0–5)", kind: "number", min: 0, max: 5, step: 1, optional: true },
      { key: "retry_text", label: "Text when the answer is not valid", kind: "textarea", optional: true },
      { key: "leave_words", label: "Words that leave by fallback at once (comma separated, e.g. agent, human)", kind: "csv", optional: true },
    ],
    condition: [
      { key: "kind", label: "Condition on", kind: "select", options: ["variable", "contact", "time", "business_hours"] },
      { key: "variable", label: "Variable", kind: "text", show: isCond(["variable"]) },
      { key: "field", label: "Contact field (name, has_email, has_phone or attributes.<key>)", kind: "text", show: isCond(["contact"]) },
      { key: "op", label: "Operator", kind: "select", options: OPS, show: isCond(["variable", "contact"]) },
      { key: "value", label: "Value", kind: "text", optional: true, show: isCond(["variable", "contact"]) },
      { key: "days", label: "Days", kind: "days", show: isCond(["time"]) },
      { key: "from", label: "From (HH:MM)", kind: "text", show: isCond(["time"]) },
      { key: "to", label: "To (HH:MM)", kind: "text", show: isCond(["time"]) },
    ],
    set: [
      { key: "variable", label: "Variable", kind: "text" },
      { key: "value", label: "Value (variables allowed)", kind: "text" },
    ],
    intent: [
      { key: "threshold", label: "Confidence threshold (0–1)", kind: "number", min: 0, max: 1, step: 0.05, optional: true },
    ],
    kb_answer: [
      { key: "threshold", label: "Confidence threshold (0–1)", kind: "number", min: 0, max: 1, step: 0.05, optional: true },
      { key: "tags", label: "Only articles tagged (comma separated)", kind: "csv", optional: true },
    ],
    ai_answer: [
      { key: "tags", label: "Articles tagged (comma separated)", kind: "csv", optional: true },
    ],
    http: [
      { key: "method", label: "Method", kind: "select", options: ["GET", "POST"] },
      { key: "url", label: "URL (https, an allowed host)", kind: "text" },
      { key: "body", label: "Body (JSON, variables allowed)", kind: "textarea", optional: true, show: (c) => c.method === "POST" },
      { key: "map", label: "Map the answer: variable = path (one per line, e.g. status = order.status)", kind: "map", optional: true },
      { key: "timeout", label: "Timeout (1–10 s)", kind: "number", min: 1, max: 10, step: 1, optional: true },
    ],
    handoff: [
      { key: "inbox", label: "To inbox", kind: "inbox" },
      { key: "note", label: "Note for the agent", kind: "textarea", optional: true },
    ],
    end: [
      { key: "text", label: "Goodbye text", kind: "textarea", optional: true },
    ],
    start: [],
  };

  function summaryOf(node) {
    const c = node.config || {};
    switch (node.type) {
      case "send": case "ask": case "end": return c.text || "";
      case "condition": return c.kind === "variable" ? `${c.variable || "?"} ${c.op || ""} ${c.value || ""}` : c.kind || "";
      case "set": return `${c.variable || "?"} = ${c.value || ""}`;
      case "intent": return (c.intents || []).map((i) => i.name).join(", ") || "no intents";
      case "http": return `${c.method || "GET"} ${c.url || ""}`;
      case "handoff": return c.note || "to a human";
      default: return "";
    }
  }

  // --- state ----------------------------------------------------------------------------------
  let graph = { nodes: [], edges: [] };
  let baseUpdatedAt = null;
  let problems = [];
  let selected = null; // graph id of the selected node
  let past = []; let future = []; let lastKey = null;
  let simMessages = [];
  let simPath = [];
  const dfOf = new Map(); // graph id -> drawflow id
  const gidOf = new Map(); // drawflow id (string) -> graph id
  let quiet = 0; // > 0 while we drive Drawflow ourselves (its events are ours)

  const nodeById = (id) => graph.nodes.find((n) => n.id === id);
  const snapshot = () => JSON.stringify(graph);

  // --- Drawflow -------------------------------------------------------------------------------
  const canvas = $("fe-canvas");
  const editor = new window.Drawflow(canvas);
  editor.reroute = false;
  editor.force_first_input = true; // dropping a connection anywhere on a node connects it
  editor.key = () => {}; // our own keyboard handling (below), not Drawflow's Delete
  editor.start();
  canvas.removeAttribute("tabindex"); // the nodes take focus, not the whole canvas
  const MODULE = () => editor.drawflow.drawflow[editor.module].data;

  function nodeElement(gid) {
    const df = dfOf.get(gid);
    return df === undefined ? null : document.getElementById(`node-${df}`);
  }

  function paintNode(node) {
    const el = nodeElement(node.id);
    if (!el) return;
    el.querySelector(".fnode-type").textContent = LABELS[node.type] || node.type;
    el.querySelector(".fnode-id").textContent = node.id;
    el.querySelector(".fnode-summary").textContent = summaryOf(node).slice(0, 80);
    el.dataset.gid = node.id;
    el.tabIndex = 0;
    el.setAttribute("role", "group");
    el.setAttribute("aria-roledescription", "flow node");
    if (selected === node.id) el.setAttribute("aria-current", "true"); else el.removeAttribute("aria-current");
    const mine = problems.filter((p) => p.node === node.id);
    el.classList.toggle("has-problem", mine.length > 0);
    el.classList.toggle("is-selected", selected === node.id);
    const list = el.querySelector(".fnode-problems");
    list.replaceChildren(...mine.map((p) => { const li = document.createElement("li"); li.textContent = p.message; return li; }));
    const stepAt = simPath.findIndex((s) => s.node === node.id);
    el.classList.toggle("on-path", stepAt >= 0);
    el.querySelector(".fnode-step").textContent = stepAt >= 0 ? String(stepAt + 1) : "";
    el.setAttribute(
      "aria-label",
      `${LABELS[node.type] || node.type} node ${node.id}` +
        (mine.length ? `, ${mine.length} problem${mine.length > 1 ? "s" : ""}: ${mine.map((p) => p.message).join(" ")}` : "") +
        (stepAt >= 0 ? `, step ${stepAt + 1} of the simulated path` : ""),
    );
    portsOf(node).forEach((port, i) => {
      const out = el.querySelector(`.outputs .output_${i + 1}`);
      if (out) { out.dataset.port = port; out.title = `Port ${port}`; }
    });
    const input = el.querySelector(".inputs .input_1");
    if (input) input.title = "Input";
  }

  const NODE_HTML =
    '<div class="fnode-body"><div class="fnode-head"><span class="fnode-type"></span> ' +
    '<span class="fnode-id"></span><span class="fnode-step"></span></div>' +
    '<div class="fnode-summary"></div><ul class="fnode-problems"></ul></div>';

  function render() {
    quiet++;
    try {
      editor.clear();
      dfOf.clear(); gidOf.clear();
      for (const node of graph.nodes) {
        const df = editor.addNode(node.type, hasInput(node.type) ? 1 : 0, portsOf(node).length,
          Number(node.x) || 0, Number(node.y) || 0, `fnode fnode-${node.type}`, { gid: node.id }, NODE_HTML);
        dfOf.set(node.id, df); gidOf.set(String(df), node.id);
      }
      graph.nodes.forEach(paintNode); // sized by their text before the edges are drawn
      for (const edge of graph.edges) {
        const from = nodeById(edge.from); const to = nodeById(edge.to);
        if (!from || !to || !hasInput(to.type)) continue;
        const index = portsOf(from).indexOf(edge.port);
        if (index < 0) continue;
        editor.addConnection(dfOf.get(edge.from), dfOf.get(edge.to), `output_${index + 1}`, "input_1");
      }
      redrawEdges();
      paintPath();
    } finally {
      quiet--;
    }
  }

  // A node's text changes its height, and so where its ports are: edges follow.
  function redrawEdges() { for (const df of dfOf.values()) editor.updateConnectionNodes(`node-${df}`); }

  function paintAll() { graph.nodes.forEach(paintNode); redrawEdges(); paintPath(); }

  function paintPath() {
    canvas.querySelectorAll(".connection.on-path").forEach((c) => c.classList.remove("on-path"));
    for (let i = 0; i + 1 < simPath.length; i++) {
      const from = nodeById(simPath[i].node);
      if (!from) continue;
      const index = portsOf(from).indexOf(simPath[i].port);
      const a = dfOf.get(simPath[i].node); const b = dfOf.get(simPath[i + 1].node);
      if (index < 0 || a === undefined || b === undefined) continue;
      const svg = canvas.querySelector(`.connection.node_out_node-${a}.node_in_node-${b}.output_${index + 1}`);
      if (svg) svg.classList.add("on-path");
    }
  }

  // --- history and changes --------------------------------------------------------------------
  // Call before a change; the same key in a row (typing in one field, nudging one
  // node) makes one undo step.
  function checkpoint(key = null) {
    if (key === null || key !== lastKey) {
      past.push(snapshot());
      if (past.length > 200) past.shift();
      future = [];
    }
    lastKey = key;
  }

  function changed({ redraw = false } = {}) {
    if (redraw) render(); else paintAll();
    updateHistoryButtons();
    scheduleSave();
  }

  function updateHistoryButtons() {
    $("fe-undo").disabled = past.length === 0;
    $("fe-redo").disabled = future.length === 0;
  }

  function restore(text) {
    const onCanvas = canvas.contains(document.activeElement);
    graph = JSON.parse(text);
    lastKey = null;
    if (selected && !nodeById(selected)) selected = null;
    render();
    renderPanel();
    if (onCanvas) {
      // Focus stays on the canvas: the selected node, or the first one.
      const target = (selected && nodeElement(selected)) || canvas.querySelector(".fnode");
      if (target) target.focus({ preventScroll: true });
    }
    updateHistoryButtons();
    scheduleSave();
  }
  function undo() { if (!past.length) return; future.push(snapshot()); restore(past.pop()); announce("Undone."); }
  function redo() { if (!future.length) return; past.push(snapshot()); restore(future.pop()); announce("Redone."); }

  function freeId(type) {
    for (let n = 1; ; n++) {
      const id = type === "start" && n === 1 ? "start" : `${type}_${n}`;
      if (!nodeById(id)) return id;
    }
  }

  function addNode(type, x, y) {
    checkpoint();
    const id = freeId(type);
    graph.nodes.push({ id, type, x: Math.round(x), y: Math.round(y), config: DEFAULTS[type]() });
    changed({ redraw: true });
    select(id, { focus: true });
    announce(`${LABELS[type]} node ${id} added.`);
  }

  function removeNode(gid) {
    checkpoint();
    graph.nodes = graph.nodes.filter((n) => n.id !== gid);
    graph.edges = graph.edges.filter((e) => e.from !== gid && e.to !== gid);
    if (selected === gid) selected = null;
    changed({ redraw: true });
    renderPanel();
    announce(`Node ${gid} deleted.`);
  }

  function setEdge(from, port, to) {
    checkpoint();
    graph.edges = graph.edges.filter((e) => !(e.from === from && e.port === port));
    if (to) graph.edges.push({ from, port, to });
    changed({ redraw: true });
  }

  function moveNode(gid, dx, dy) {
    const node = nodeById(gid);
    if (!node) return;
    checkpoint(`move:${gid}`);
    node.x = Math.max(0, Math.round((Number(node.x) || 0) + dx));
    node.y = Math.max(0, Math.round((Number(node.y) || 0) + dy));
    const df = dfOf.get(gid);
    const data = MODULE()[df];
    if (data) { data.pos_x = node.x; data.pos_y = node.y; }
    const el = nodeElement(gid);
    if (el) { el.style.left = `${node.x}px`; el.style.top = `${node.y}px`; }
    editor.updateConnectionNodes(`node-${df}`);
    changed();
  }

  // Drawflow reports what the mouse did; the graph follows.
  editor.on("nodeMoved", (df) => {
    const gid = gidOf.get(String(df)); const node = nodeById(gid);
    const data = MODULE()[df];
    if (!node || !data) return;
    checkpoint();
    node.x = Math.round(data.pos_x); node.y = Math.round(data.pos_y);
    changed();
  });
  editor.on("connectionCreated", (c) => {
    if (quiet) return;
    const from = nodeById(gidOf.get(String(c.output_id)));
    const to = nodeById(gidOf.get(String(c.input_id)));
    const port = from ? portsOf(from)[Number(c.output_class.replace("output_", "")) - 1] : undefined;
    if (!from || !to || port === undefined || from.id === to.id) { render(); return; }
    setEdge(from.id, port, to.id); // one edge per port: redraws without the old one
    announce(`Connected ${from.id} ${port} to ${to.id}.`);
  });
  editor.on("connectionRemoved", (c) => {
    if (quiet) return;
    const from = nodeById(gidOf.get(String(c.output_id)));
    const to = gidOf.get(String(c.input_id));
    const port = from ? portsOf(from)[Number(c.output_class.replace("output_", "")) - 1] : undefined;
    if (!from || port === undefined) return;
    checkpoint();
    graph.edges = graph.edges.filter((e) => !(e.from === from.id && e.port === port && e.to === to));
    changed();
    renderPanel();
  });
  editor.on("nodeRemoved", (df) => {
    if (quiet) return;
    const gid = gidOf.get(String(df));
    if (gid && nodeById(gid)) removeNode(gid);
  });
  editor.on("nodeSelected", (df) => { const gid = gidOf.get(String(df)); if (gid) select(gid); });
  editor.on("nodeUnselected", () => { if (!quiet) select(null); });

  // --- selection and the side panel -----------------------------------------------------------
  function select(gid, { focus = false } = {}) {
    if (selected === gid && !focus) return;
    selected = gid;
    canvas.querySelectorAll(".fnode.is-selected").forEach((el) => { el.classList.remove("is-selected"); el.removeAttribute("aria-current"); });
    const el = gid ? nodeElement(gid) : null;
    if (el) {
      el.classList.add("is-selected"); el.setAttribute("aria-current", "true");
      if (focus) { el.focus({ preventScroll: true }); bringIntoView(gid); }
    }
    renderPanel();
  }

  // Pan the canvas so a node is in sight (a problem or path entry was picked).
  function bringIntoView(gid) {
    const node = nodeById(gid); if (!node) return;
    const w = canvas.clientWidth; const h = canvas.clientHeight;
    const z = editor.zoom;
    const sx = node.x * z + editor.canvas_x; const sy = node.y * z + editor.canvas_y;
    if (sx >= 0 && sy >= 0 && sx + 180 * z <= w && sy + 80 * z <= h) return;
    editor.canvas_x = w / 3 - node.x * z; editor.canvas_y = h / 3 - node.y * z;
    editor.precanvas.style.transform = `translate(${editor.canvas_x}px, ${editor.canvas_y}px) scale(${z})`;
  }

  function el(tag, props = {}, children = []) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") e.textContent = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k in e && typeof v !== "string") e[k] = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c) e.appendChild(c);
    return e;
  }

  let fieldSeq = 0;
  function field(label, control, hint) {
    const id = `fe-f-${++fieldSeq}`;
    control.id = id;
    const wrap = el("div", { class: "fe-field" }, [el("label", { for: id, text: label }), control]);
    if (hint) {
      const hid = `${id}-hint`;
      wrap.appendChild(el("small", { id: hid, class: "muted", text: hint }));
      control.setAttribute("aria-describedby", hid);
    }
    return wrap;
  }

  // Remove keys the node's kind does not use and optional ones left empty.
  function cleanConfig(node) {
    const c = node.config;
    for (const f of FIELDS[node.type] || []) {
      const v = c[f.key];
      const empty = v === undefined || v === null || v === "" || (Array.isArray(v) && !v.length) ||
        (f.kind === "map" && v && typeof v === "object" && !Object.keys(v).length);
      if ((f.show && !f.show(c)) || (f.optional && empty)) delete c[f.key];
    }
    if (node.type === "handoff" && !("inbox" in c)) c.inbox = null;
  }

  function editConfig(node, key, value, { redraw = false, rebuild = false } = {}) {
    checkpoint(`cfg:${node.id}:${key}`);
    node.config[key] = value;
    cleanConfig(node);
    changed({ redraw });
    if (rebuild) renderPanel();
  }

  function controlFor(node, f) {
    const c = node.config;
    const v = c[f.key];
    const on = (ctl, event, read, opts) => ctl.addEventListener(event, () => editConfig(node, f.key, read(), opts));
    switch (f.kind) {
      case "textarea": {
        const t = el("textarea", { rows: "3" }); t.value = v ?? "";
        on(t, "input", () => t.value); return t;
      }
      case "select": {
        const s = el("select", {}, f.options.map((o) => el("option", { value: o, text: o })));
        s.value = v ?? f.options[0];
        on(s, "change", () => s.value, { rebuild: true }); return s;
      }
      case "number": {
        const i = el("input", { type: "number", min: String(f.min), max: String(f.max), step: String(f.step) });
        i.value = v ?? "";
        on(i, "input", () => (i.value === "" ? "" : Number(i.value))); return i;
      }
      case "lines": {
        const t = el("textarea", { rows: "3" }); t.value = (v || []).join("\n");
        on(t, "input", () => t.value.split("\n").map((s) => s.trim()).filter(Boolean)); return t;
      }
      case "csv": {
        const i = el("input", { type: "text" }); i.value = (v || []).join(", ");
        on(i, "input", () => i.value.split(",").map((s) => s.trim()).filter(Boolean)); return i;
      }
      case "map": {
        const t = el("textarea", { rows: "3" });
        t.value = Object.entries(v || {}).map(([k, p]) => `${k} = ${p}`).join("\n");
        on(t, "input", () => Object.fromEntries(t.value.split("\n").map((line) => line.split("=")).filter((p) => p.length >= 2 && p[0].trim())
          .map((p) => [p[0].trim(), p.slice(1).join("=").trim()]))); return t;
      }
      case "days": {
        const box = el("fieldset", { class: "fe-days" }, [el("legend", { text: f.label })]);
        DAYS.forEach((d, i) => {
          const cb = el("input", { type: "checkbox", value: String(i) });
          cb.checked = (v || []).includes(i);
          cb.addEventListener("change", () => editConfig(node, "days",
            Array.from(box.querySelectorAll("input:checked")).map((x) => Number(x.value))));
          box.appendChild(el("label", { class: "fe-check" }, [cb, document.createTextNode(` ${d}`)]));
        });
        return box;
      }
      case "inbox": {
        const s = el("select", {}, [el("option", { value: "", text: "The conversation's own inbox" })]);
        $("inbox-options").content.querySelectorAll("option").forEach((o) => s.appendChild(o.cloneNode(true)));
        s.value = v === null || v === undefined ? "" : String(v);
        on(s, "change", () => (s.value === "" ? null : Number(s.value))); return s;
      }
      default: {
        const i = el("input", { type: "text" }); i.value = v ?? "";
        on(i, "input", () => i.value); return i;
      }
    }
  }

  function intentEditor(node) {
    const box = el("div", { class: "fe-intents" });
    const intents = node.config.intents || (node.config.intents = []);
    intents.forEach((intent, index) => {
      const name = el("input", { type: "text", maxlength: "40" }); name.value = intent.name || "";
      name.addEventListener("change", () => {
        checkpoint();
        const old = `intent:${intent.name}`;
        intent.name = name.value.trim();
        graph.edges.forEach((e) => { if (e.from === node.id && e.port === old) e.port = `intent:${intent.name}`; });
        changed({ redraw: true }); renderPanel();
      });
      const ex = el("textarea", { rows: "3" }); ex.value = (intent.examples || []).join("\n");
      ex.addEventListener("input", () => {
        checkpoint(`intent:${node.id}:${index}`);
        intent.examples = ex.value.split("\n").map((s) => s.trim()).filter(Boolean);
        changed();
      });
      const remove = el("button", { type: "button", class: "link", text: `Remove intent ${intent.name || index + 1}` });
      remove.addEventListener("click", () => {
        checkpoint();
        graph.edges = graph.edges.filter((e) => !(e.from === node.id && e.port === `intent:${intent.name}`));
        intents.splice(index, 1);
        changed({ redraw: true }); renderPanel();
      });
      box.appendChild(el("fieldset", { class: "fe-intent" }, [
        el("legend", { text: `Intent ${index + 1}` }),
        field("Name (a–z, 0–9, _)", name),
        field("Examples (one per line)", ex),
        remove,
      ]));
    });
    const add = el("button", { type: "button", text: "Add intent" });
    add.addEventListener("click", () => {
      checkpoint();
      let n = intents.length + 1;
      while (intents.some((i) => i.name === `intent_${n}`)) n++;
      intents.push({ name: `intent_${n}`, examples: [] });
      changed({ redraw: true }); renderPanel();
      const inputs = $("fe-props-body").querySelectorAll(".fe-intent input");
      if (inputs.length) inputs[inputs.length - 1].focus();
    });
    box.appendChild(add);
    return box;
  }

  function connectControls(node) {
    const ports = portsOf(node);
    if (!ports.length) return el("p", { class: "muted", text: "This node ends the run: it has no ports." });
    const box = el("fieldset", { class: "fe-connect" }, [el("legend", { text: "Connect port → node" })]);
    for (const port of ports) {
      const s = el("select", {}, [el("option", { value: "", text: "— not connected —" })]);
      for (const other of graph.nodes) {
        if (other.id !== node.id && hasInput(other.type)) s.appendChild(el("option", { value: other.id, text: `${other.id} (${LABELS[other.type]})` }));
      }
      const edge = graph.edges.find((e) => e.from === node.id && e.port === port);
      s.value = edge ? edge.to : "";
      s.addEventListener("change", () => {
        setEdge(node.id, port, s.value || null);
        announce(s.value ? `Connected ${node.id} ${port} to ${s.value}.` : `Port ${port} disconnected.`);
      });
      box.appendChild(field(`Port ${port}`, s));
    }
    return box;
  }

  const FOCUSABLE = "input, select, textarea, button";
  function renderPanel() {
    const body = $("fe-props-body");
    // Rebuilding the panel must not drop the keyboard user's place in it.
    const controls = Array.from(body.querySelectorAll(FOCUSABLE));
    const at = controls.indexOf(document.activeElement);
    fillPanel(body);
    if (at >= 0) {
      const again = body.querySelectorAll(FOCUSABLE);
      const target = again[Math.min(at, again.length - 1)];
      if (target) target.focus();
    }
  }

  function fillPanel(body) {
    const node = selected ? nodeById(selected) : null;
    if (!node) {
      $("fe-props-title").textContent = "Node";
      body.replaceChildren(el("p", { class: "muted", text: "Select a node to edit it." }));
      return;
    }
    $("fe-props-title").textContent = `${LABELS[node.type]}: ${node.id}`;
    const parts = [];
    const mine = problems.filter((p) => p.node === node.id);
    if (mine.length) parts.push(el("ul", { class: "fe-node-problems", role: "list" }, mine.map((p) => el("li", { text: p.message }))));
    if (node.type === "start") parts.push(el("p", { class: "muted", text: "The run begins here. Connect its port to the first step." }));
    for (const f of FIELDS[node.type] || []) {
      if (f.show && !f.show(node.config)) continue;
      const control = controlFor(node, f);
      parts.push(f.kind === "days" ? control : field(f.label, control, f.hint));
    }
    if (node.type === "intent") parts.push(intentEditor(node));
    parts.push(connectControls(node));
    const del = el("button", { type: "button", class: "danger", text: `Delete node ${node.id}`, "aria-keyshortcuts": "Delete" });
    del.addEventListener("click", () => removeNode(node.id));
    parts.push(el("div", { class: "fe-row" }, [del]));
    body.replaceChildren(...parts);
  }

  // --- palette: drag, or Enter/click ----------------------------------------------------------
  function visibleSpot() {
    const z = editor.zoom;
    let x = (canvas.clientWidth / 3 - editor.canvas_x) / z;
    let y = (canvas.clientHeight / 4 - editor.canvas_y) / z;
    // Not on top of another node.
    for (let tries = 0; tries < 40 && graph.nodes.some((n) => Math.abs(n.x - x) < 200 && Math.abs(n.y - y) < 100); tries++) {
      y += 110;
      if (tries % 4 === 3) { x += 230; y -= 440; }
    }
    return [Math.max(0, x), Math.max(0, y)];
  }
  document.querySelectorAll(".fe-palette-item").forEach((item) => {
    item.addEventListener("click", () => addNode(item.dataset.type, ...visibleSpot()));
    item.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData("application/x-parley-node", item.dataset.type);
      event.dataTransfer.effectAllowed = "copy";
    });
  });
  canvas.addEventListener("dragover", (event) => { event.preventDefault(); event.dataTransfer.dropEffect = "copy"; });
  canvas.addEventListener("drop", (event) => {
    event.preventDefault();
    const type = event.dataTransfer.getData("application/x-parley-node");
    if (!LABELS[type]) return;
    const rect = editor.precanvas.getBoundingClientRect();
    const z = editor.zoom;
    addNode(type, (event.clientX - rect.x) / z - 80, (event.clientY - rect.y) / z - 30);
  });

  // --- keyboard -------------------------------------------------------------------------------
  const typing = (t) => t && (["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) || t.isContentEditable);
  canvas.addEventListener("focusin", (event) => {
    const node = event.target.closest && event.target.closest(".fnode");
    if (node && node.dataset.gid && node.dataset.gid !== selected) select(node.dataset.gid);
  });
  canvas.addEventListener("keydown", (event) => {
    const nodeEl = event.target.closest && event.target.closest(".fnode");
    if (!nodeEl || !nodeEl.dataset.gid) return;
    const gid = nodeEl.dataset.gid;
    const step = event.shiftKey ? 60 : 15;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[event.key]) { event.preventDefault(); moveNode(gid, ...moves[event.key]); return; }
    if (event.key === "Delete" || event.key === "Backspace") { event.preventDefault(); removeNode(gid); focusAfterDelete(); return; }
    if (event.key === "Enter") {
      event.preventDefault();
      const first = $("fe-props-body").querySelector("input, textarea, select, button");
      if (first) first.focus();
    }
  });
  // Escape in the side panel: back to the node on the canvas.
  $("fe-props").addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !selected) return;
    const node = nodeElement(selected);
    if (node) { event.preventDefault(); node.focus(); }
  });
  function focusAfterDelete() {
    const next = canvas.querySelector(".fnode");
    if (next) next.focus(); else document.querySelector(".fe-palette-item").focus();
  }
  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || typing(event.target)) {
      // Delete a selected connection (clicked on the canvas).
      if (event.key === "Delete" && !typing(event.target) && editor.connection_selected) {
        event.preventDefault(); editor.removeConnection();
      }
      return;
    }
    const key = event.key.toLowerCase();
    if (key === "z" && !event.shiftKey) { event.preventDefault(); undo(); }
    else if ((key === "z" && event.shiftKey) || key === "y") { event.preventDefault(); redo(); }
  });
  $("fe-undo").addEventListener("click", undo);
  $("fe-redo").addEventListener("click", redo);
  $("fe-zoom-in").addEventListener("click", () => editor.zoom_in());
  $("fe-zoom-out").addEventListener("click", () => editor.zoom_out());
  $("fe-zoom-reset").addEventListener("click", () => editor.zoom_reset());
  editor.on("zoom", (z) => { $("fe-zoom-level").textContent = `${Math.round(z * 100)}%`; });

  // --- saving ---------------------------------------------------------------------------------
  const saveState = $("fe-save");
  let saveTimer = null; let saving = false; let dirty = false; let conflict = false;
  function setSave(text, kind) { saveState.textContent = text; saveState.dataset.state = kind; }
  function scheduleSave() {
    if (conflict) return;
    dirty = true;
    setSave("Unsaved changes", "dirty");
    clearTimeout(saveTimer);
    saveTimer = setTimeout(save, 700);
  }
  async function save() {
    if (saving) { saveTimer = setTimeout(save, 300); return; }
    if (!dirty || conflict) return;
    saving = true; dirty = false;
    setSave("Saving…", "saving");
    const body = { graph };
    if (baseUpdatedAt) body.base_updated_at = baseUpdatedAt;
    const { ok, status, data } = await call("PUT", `${API}draft/`, body);
    saving = false;
    if (ok) {
      baseUpdatedAt = data.updated_at;
      showProblems(data.problems || []);
      if (!dirty) setSave("Saved", "saved");
      refreshMeta();
      return;
    }
    if (status === 409) {
      conflict = true;
      setSave("Conflict: this draft was changed elsewhere.", "conflict");
      notice("This draft was changed in another tab or by someone else. Your last change is not saved.", "Load the latest draft", loadDraft);
      return;
    }
    dirty = true;
    if (data && Array.isArray(data.problems)) showProblems(data.problems);
    setSave(`Not saved: ${errorText(data)}`, "error");
    if (status >= 500 || status === 0) saveTimer = setTimeout(save, 5000);
  }
  window.addEventListener("beforeunload", (event) => { if (dirty || saving) event.preventDefault(); });

  function notice(text, actionLabel, action, kind = "error") {
    const box = $("fe-notice");
    box.className = `msg ${kind}`;
    box.replaceChildren(document.createTextNode(text + " "));
    if (actionLabel) {
      const b = el("button", { type: "button", text: actionLabel });
      b.addEventListener("click", () => { box.hidden = true; action(); });
      box.appendChild(b);
    }
    box.hidden = false;
  }
  function announce(text) { $("fe-announce").textContent = text; }

  // --- problems -------------------------------------------------------------------------------
  function showProblems(list) {
    problems = Array.isArray(list) ? list : [];
    const ul = $("fe-problems-list");
    ul.replaceChildren();
    for (const p of problems) {
      const li = el("li");
      if (p.node && nodeById(p.node)) {
        const b = el("button", { type: "button", class: "link", text: `${p.node}: ${p.message}` });
        b.addEventListener("click", () => select(p.node, { focus: true }));
        li.appendChild(b);
      } else {
        li.textContent = p.node ? `${p.node}: ${p.message}` : p.message;
      }
      li.dataset.code = p.code || "";
      ul.appendChild(li);
    }
    $("fe-problems-summary").textContent = problems.length
      ? `${problems.length} problem${problems.length > 1 ? "s" : ""} to fix before publishing.`
      : "No problems: ready to publish.";
    paintAll();
    renderPanelKeepingFocus();
  }
  // Refresh the panel's problem list without stealing focus from a field being typed in.
  function renderPanelKeepingFocus() {
    const body = $("fe-props-body");
    if (body.contains(document.activeElement)) {
      const node = selected && nodeById(selected);
      const old = body.querySelector(".fe-node-problems");
      const mine = node ? problems.filter((p) => p.node === node.id) : [];
      const fresh = mine.length ? el("ul", { class: "fe-node-problems", role: "list" }, mine.map((p) => el("li", { text: p.message }))) : null;
      if (old && fresh) old.replaceWith(fresh); else if (old) old.remove(); else if (fresh) body.prepend(fresh);
      return;
    }
    renderPanel();
  }

  $("fe-validate").addEventListener("click", async () => {
    const { ok, data } = await call("POST", `${API}validate/`, { graph });
    if (!ok) { notice(`Not checked: ${errorText(data)}`); return; }
    showProblems(data.problems || []);
  });

  // --- dialog (publish, roll back) ------------------------------------------------------------
  function confirmDialog(title, text, okLabel, withNote) {
    const dialog = $("fe-dialog");
    $("fe-dialog-title").textContent = title;
    $("fe-dialog-text").textContent = text;
    $("fe-dialog-ok").textContent = okLabel;
    $("fe-dialog-note-row").hidden = !withNote;
    $("fe-dialog-note").value = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? $("fe-dialog-note").value.trim() : null), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  $("fe-publish").addEventListener("click", async () => {
    const note = await confirmDialog("Publish this draft?", "New conversations will follow it at once; runs under way finish on their version.", "Publish", true);
    if (note === null) return;
    // Pending changes first: publish what is on the canvas.
    clearTimeout(saveTimer);
    while ((dirty || saving) && !conflict) {
      if (saving) await new Promise((r) => setTimeout(r, 100));
      else { await save(); if (dirty) break; } // still dirty: the save failed
    }
    if (dirty || conflict) { notice("Not published: the draft could not be saved first."); return; }
    const body = note ? { note } : {};
    const { ok, data } = await call("POST", `${API}publish/`, body);
    if (!ok) {
      if (data && data.problems) showProblems(data.problems);
      notice(`Not published: ${errorText(data)}`);
      return;
    }
    const v = data.version || {};
    notice(`Published as version ${v.number ?? "?"}.`, null, null, "success");
    await loadDraft({ keepHistory: true });
    refreshMeta(); loadVersions();
  });

  // --- versions and diff ----------------------------------------------------------------------
  async function loadVersions() {
    const { ok, data } = await call("GET", `${API}versions/`);
    const ul = $("fe-versions-list");
    if (!ok) { ul.replaceChildren(el("li", { text: `Versions not loaded: ${errorText(data)}` })); return; }
    const versions = Array.isArray(data) ? data : (data.results || []);
    ul.replaceChildren();
    for (const v of versions) {
      const when = v.published_at ? new Date(v.published_at).toLocaleString() : "";
      const li = el("li", { class: `fe-version fe-version-${v.status || ""}` }, [
        el("strong", { text: `v${v.number}` }),
        document.createTextNode(` ${v.status || ""}${when ? " " + when : ""}${v.note ? " — " + v.note : ""} `),
      ]);
      if (v.status !== "draft") {
        const diff = el("button", { type: "button", class: "link", text: `Changes v${v.number} → draft` });
        diff.addEventListener("click", () => showDiff(v.number));
        li.appendChild(diff);
        li.appendChild(document.createTextNode(" "));
        const back = el("button", { type: "button", class: "link", text: `Roll back to v${v.number}` });
        back.addEventListener("click", () => rollback(v.number));
        li.appendChild(back);
      }
      ul.appendChild(li);
    }
    if (!versions.length) ul.appendChild(el("li", { class: "muted", text: "No versions yet." }));
  }

  async function showDiff(number) {
    const box = $("fe-diff");
    const { ok, data } = await call("GET", `${API}versions/${number}/diff/?against=draft`);
    if (!ok) { box.replaceChildren(el("p", { class: "errors", text: `No diff: ${errorText(data)}` })); return; }
    const items = [];
    for (const c of data.changes || []) {
      items.push(el("li", { class: `fe-diff-${c.kind}`, text: `${c.kind} ${c.type || ""} ${c.node}${c.detail ? ": " + (typeof c.detail === "string" ? c.detail : JSON.stringify(c.detail)) : ""}` }));
    }
    const edge = (e) => (typeof e === "string" ? e : `${e.from} —${e.port}→ ${e.to}`);
    for (const e of data.edges_added || []) items.push(el("li", { class: "fe-diff-added", text: `edge added ${edge(e)}` }));
    for (const e of data.edges_removed || []) items.push(el("li", { class: "fe-diff-removed", text: `edge removed ${edge(e)}` }));
    box.replaceChildren(
      el("h3", { text: `v${number} → draft` }),
      items.length ? el("ul", { class: "fe-list" }, items) : el("p", { class: "muted", text: "No differences." }),
    );
  }

  async function rollback(number) {
    const ok = await confirmDialog(`Roll back to version ${number}?`, `A new published version is made with the graph of version ${number}. Your draft stays as it is.`, "Roll back", false);
    if (ok === null) return;
    const { ok: done, data } = await call("POST", `${API}rollback/`, { number });
    if (!done) { notice(`Not rolled back: ${errorText(data)}`); return; }
    const v = data.version || data;
    notice(`Rolled back: version ${v.number ?? "?"} is live with the graph of version ${number}.`, null, null, "success");
    refreshMeta(); loadVersions();
  }

  // --- simulator ------------------------------------------------------------------------------
  async function simulate() {
    const { ok, data } = await call("POST", `${API}simulate/`, { messages: simMessages, graph });
    const out = $("fe-sim-outcome");
    if (!ok) { out.textContent = `Not simulated: ${errorText(data)}`; return; }
    const t = $("fe-sim-transcript");
    t.replaceChildren(...(data.transcript || []).map((m) => {
      const li = el("li", { class: `fe-say fe-say-${m.from}` }, [el("span", { class: "fe-who", text: `${m.from}: ` }), el("span", { text: m.text || "" })]);
      if (m.buttons && m.buttons.length) li.appendChild(el("span", { class: "fe-buttons", text: ` [${m.buttons.join("] [")}]` }));
      return li;
    }));
    out.textContent = `Outcome: ${data.outcome || "?"}${data.reason ? ` (${data.reason})` : ""}`;
    simPath = Array.isArray(data.path) ? data.path : [];
    $("fe-sim-path").replaceChildren(...simPath.map((s, i) => {
      const b = el("button", { type: "button", class: "link", text: `${i + 1}. ${s.node} (${s.type})${s.port ? " → " + s.port : ""}` });
      b.addEventListener("click", () => { if (nodeById(s.node)) select(s.node, { focus: true }); });
      return el("li", {}, [b]);
    }));
    $("fe-sim-vars").replaceChildren(...Object.entries(data.variables || {}).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
    paintAll();
  }
  $("fe-sim-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("fe-sim-input");
    const text = input.value.trim();
    if (!text) return;
    simMessages.push(text);
    input.value = "";
    simulate();
  });
  $("fe-sim-reset").addEventListener("click", () => {
    simMessages = []; simPath = [];
    ["fe-sim-transcript", "fe-sim-path", "fe-sim-vars"].forEach((id) => $(id).replaceChildren());
    $("fe-sim-outcome").textContent = "";
    paintAll();
    $("fe-sim-input").focus();
  });

  // --- flow meta and settings -----------------------------------------------------------------
  async function refreshMeta() {
    const { ok, data } = await call("GET", API);
    if (!ok) return;
    const live = data.live_version;
    $("fe-live").textContent = live ? `Live: v${live.number}` : "Not published";
    $("fe-live").className = live ? "badge active" : "badge";
    fillSettings(data);
  }
  let settingsFilled = false;
  function fillSettings(flow) {
    if (settingsFilled) return;
    settingsFilled = true;
    const f = $("fe-settings-form");
    f.elements.name.value = flow.name || "";
    f.elements.description.value = flow.description || "";
    f.elements.trigger.value = flow.trigger || "new_conversation";
    f.elements.keywords.value = (flow.keywords || []).join(", ");
    f.elements.trigger_intent.value = flow.trigger_intent || "";
    f.querySelectorAll("input[name=inboxes]").forEach((cb) => { cb.checked = (flow.inboxes || []).includes(Number(cb.value)); });
    f.elements.enabled.checked = flow.enabled !== false;
  }
  $("fe-settings-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.currentTarget;
    const body = {
      name: f.elements.name.value.trim(),
      description: f.elements.description.value.trim(),
      trigger: f.elements.trigger.value,
      keywords: f.elements.keywords.value.split(",").map((s) => s.trim()).filter(Boolean),
      trigger_intent: f.elements.trigger_intent.value.trim(),
      inboxes: Array.from(f.querySelectorAll("input[name=inboxes]:checked")).map((cb) => Number(cb.value)),
      enabled: f.elements.enabled.checked,
    };
    const { ok, data } = await call("PATCH", API, body);
    $("fe-settings-status").textContent = ok ? "Settings saved." : `Not saved: ${errorText(data)}`;
    if (ok) $("fe-name").textContent = data.name;
  });

  // --- loading --------------------------------------------------------------------------------
  async function loadDraft({ keepHistory = false } = {}) {
    const { ok, data } = await call("GET", `${API}draft/`);
    if (!ok) { setSave(`Draft not loaded: ${errorText(data)}`, "error"); return; }
    graph = data.graph && Array.isArray(data.graph.nodes) ? data.graph : { nodes: [], edges: [] };
    if (!Array.isArray(graph.edges)) graph.edges = [];
    baseUpdatedAt = data.updated_at;
    conflict = false; dirty = false;
    if (!keepHistory) { past = []; future = []; lastKey = null; }
    if (selected && !nodeById(selected)) selected = null;
    render(); renderPanel(); updateHistoryButtons();
    setSave(`Draft v${data.number} saved`, "saved");
    const check = await call("POST", `${API}validate/`, {});
    if (check.ok) showProblems(check.data.problems || []);
  }

  loadDraft();
  refreshMeta();
  loadVersions();
})();
