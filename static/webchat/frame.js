/* Parley web chat: the frame inside the widget's iframe (same origin as the API).
 *
 * Plain script, no dependencies, no inline code: runs under Parley's strict CSP.
 * Messages are rendered with textContent only (a visitor's or agent's text is
 * never parsed as HTML). Long polling with a cursor (the last message id) gets
 * replies live and after a reconnect; ids already shown are skipped, so nothing
 * appears twice. The visitor token is kept for this tab only (sessionStorage)
 * and refreshed at half-life while the page is open.
 */
(function () {
  "use strict";
  var body = document.body;
  var channel = body.getAttribute("data-channel");
  var refreshSeconds = parseInt(body.getAttribute("data-refresh"), 10) || 300;
  var base = "/webchat/" + encodeURIComponent(channel) + "/";
  var storeKey = "parley-webchat:" + channel;
  var launcher = document.getElementById("launcher");
  var panel = document.getElementById("panel");
  var closeButton = document.getElementById("close");
  var log = document.getElementById("log");
  var statusLine = document.getElementById("status");
  var form = document.getElementById("composer");
  var input = document.getElementById("text");
  var token = null;
  var cursor = 0;
  var seen = {};
  var unseen = 0;
  var polling = false;
  var lastReadSent = 0;
  var WHO = { visitor: "You", agent: "Agent", bot: "Assistant", system: "Notice" };

  function store(value) {
    try {
      if (value) { sessionStorage.setItem(storeKey, value); } else { sessionStorage.removeItem(storeKey); }
    } catch (e) { /* storage blocked (third-party frame): the token lives in memory only */ }
  }
  function stored() {
    try { return sessionStorage.getItem(storeKey); } catch (e) { return null; }
  }
  function tell(open) {
    // Only the open/closed state crosses to the host page (no message, no token).
    if (window.parent !== window) {
      window.parent.postMessage({ source: "parley-webchat", open: open }, "*");
    }
  }
  function say(text) { statusLine.textContent = text || ""; }
  function sleep(ms) { return new Promise(function (done) { setTimeout(done, ms); }); }

  function request(method, path, payload) {
    var headers = { "Accept": "application/json" };
    if (token) { headers["Authorization"] = "Bearer " + token; }
    var init = { method: method, headers: headers, credentials: "omit", cache: "no-store" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return fetch(base + path, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data, retry: response.headers.get("Retry-After") };
      });
    });
  }

  function newSession() {
    token = null;
    return request("POST", "session/").then(function (answer) {
      if (answer.status !== 201) { throw answer; }
      token = answer.data.token;
      store(token);
    });
  }
  function refresh() {
    if (!token) { return newSession(); }
    return request("POST", "session/").then(function (answer) {
      if (answer.status === 200) { token = answer.data.token; store(token); return; }
      if (answer.status === 401) { return newSession(); }
      throw answer;
    });
  }

  function render(message) {
    if (seen[message.id]) { return false; }
    seen[message.id] = true;
    var item = document.createElement("div");
    item.className = "msg " + (WHO[message.from] ? message.from : "system");
    item.setAttribute("data-id", String(message.id));
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = WHO[message.from] || "Notice";
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    item.appendChild(who);
    item.appendChild(text);
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    if (message.from !== "visitor" && panel.hidden) {
      unseen += 1;
      launcher.textContent = "Chat with us (" + unseen + " new)";
    }
    return true;
  }

  function markRead() {
    if (panel.hidden || document.visibilityState !== "visible") { return; }
    var upTo = 0;
    Object.keys(seen).forEach(function (id) { upTo = Math.max(upTo, parseInt(id, 10)); });
    if (upTo > lastReadSent) {
      lastReadSent = upTo;
      request("POST", "read/", { up_to: upTo }).catch(function () {});
    }
  }

  function poll() {
    if (polling) { return; }
    polling = true;
    (function next() {
      request("GET", "messages/?after=" + cursor + "&wait=20").then(function (answer) {
        if (answer.status === 200) {
          (answer.data.messages || []).forEach(render);
          if (typeof answer.data.cursor === "number" && answer.data.cursor > cursor) {
            cursor = answer.data.cursor;
          }
          say("");
          markRead();
          return next();
        }
        if (answer.status === 401) { return newSession().then(next); }
        var wait = answer.status === 429 ? (parseInt(answer.retry, 10) || 5) * 1000 : 3000;
        return sleep(wait).then(next);
      }).catch(function () {
        say("Reconnecting…");
        sleep(3000).then(next);
      });
    })();
  }

  function start() {
    var kept = stored();
    var ready = kept ? (token = kept, refresh()) : newSession();
    return ready.then(function () {
      poll();
      setInterval(function () { refresh().catch(function () {}); }, refreshSeconds * 1000);
    });
  }
  var started = null;

  function open() {
    panel.hidden = false;
    launcher.hidden = true;
    launcher.setAttribute("aria-expanded", "true");
    unseen = 0;
    launcher.textContent = "Chat with us";
    tell(true);
    input.focus();
    if (!started) {
      started = start().catch(function () { started = null; say("The chat is unavailable; try again later."); });
    }
    markRead();
  }
  function close() {
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    tell(false);
    launcher.focus();
  }

  function clientId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function send(text, id, attempt) {
    return request("POST", "messages/", { text: text, client_id: id }).then(function (answer) {
      if (answer.status === 201 || answer.status === 200) { render(answer.data.message); say(""); return; }
      if (answer.status === 401 && attempt < 1) {
        return refresh().then(function () { return send(text, id, attempt + 1); });
      }
      if (answer.status === 429) { say("You are sending too fast; wait " + (answer.retry || "a few") + " seconds."); }
      else { say(answer.data.detail || "The message could not be sent."); }
      input.value = input.value || text;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim()) { say("Write a message first."); input.focus(); return; }
    input.value = "";
    var go = started || (started = start());
    go.then(function () { return send(text, clientId(), 0); })
      .catch(function () { input.value = text; say("The message could not be sent; try again."); });
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  launcher.addEventListener("click", open);
  closeButton.addEventListener("click", close);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !panel.hidden) { close(); }
  });
  document.addEventListener("visibilitychange", markRead);
  if (stored()) { started = start().catch(function () { started = null; }); }
})();
