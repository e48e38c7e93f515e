// A small JSON client for /api/v1/ (session cookie + CSRF token), shared by the
// flow pages. Every answer comes back as {ok, status, data}; never throws on HTTP.
(() => {
  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function call(method, url, body) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      return { ok: false, status: 0, data: { code: "network", detail: "The server cannot be reached." } };
    }
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try { data = await response.json(); } catch (err) { data = null; }
    }
    if (!response.ok && (!data || typeof data !== "object")) {
      data = { code: `http_${response.status}`, detail: `The server answered ${response.status}.` };
    }
    return { ok: response.ok, status: response.status, data };
  }

  // A readable line for an error answer ({code, detail} or DRF's field errors).
  function errorText(data) {
    if (!data) return "Unknown error.";
    if (typeof data.detail === "string") return data.detail;
    if (typeof data === "object") {
      return Object.entries(data)
        .filter(([key]) => key !== "code")
        .map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(" ") : String(value)}`)
        .join("; ") || String(data.code || "Error.");
    }
    return String(data);
  }

  window.ParleyApi = { call, errorText };
})();
