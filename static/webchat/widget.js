/* Parley web chat widget: the one script a site adds.
 *
 *   <script src="https://<tenant-host>/static/webchat/widget.js"
 *           data-parley-channel="<public id>" async></script>
 *
 * It adds one iframe served by Parley (the chat runs there, isolated from the
 * page) and sizes it through the CSSOM (element.style), which a strict
 * Content-Security-Policy allows: no inline script or style attribute, no
 * stylesheet injected. The host page's CSP needs only script-src and frame-src
 * for Parley's origin. Narrow screens get the chat full-screen when open.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var channel = script.getAttribute("data-parley-channel");
  if (!channel || !/^[A-Za-z0-9_-]{1,32}$/.test(channel)) { return; }
  var origin = new URL(script.src, document.baseURI).origin;
  var frame = document.createElement("iframe");
  frame.src = origin + "/webchat/" + encodeURIComponent(channel) + "/";
  frame.title = "Chat";
  frame.setAttribute("data-parley-webchat", channel);
  frame.setAttribute("referrerpolicy", "no-referrer");
  var narrow = window.matchMedia("(max-width: 600px)");
  var isOpen = false;

  function size() {
    var s = frame.style;
    s.position = "fixed";
    s.border = "0";
    s.zIndex = "2147483000";
    s.colorScheme = "normal";
    s.background = "transparent";
    if (isOpen && narrow.matches) {
      s.top = "0"; s.left = "0"; s.right = "0"; s.bottom = "0";
      s.width = "100%"; s.height = "100%"; s.maxHeight = "none";
    } else if (isOpen) {
      s.top = "auto"; s.left = "auto"; s.right = "16px"; s.bottom = "16px";
      s.width = "370px"; s.height = "560px"; s.maxHeight = "calc(100% - 32px)";
    } else {
      s.top = "auto"; s.left = "auto"; s.right = "8px"; s.bottom = "8px";
      s.width = "230px"; s.height = "72px"; s.maxHeight = "none";
    }
  }

  window.addEventListener("message", function (event) {
    // Only our frame, from Parley's origin, may resize it.
    if (event.source !== frame.contentWindow || event.origin !== origin) { return; }
    var data = event.data;
    if (!data || data.source !== "parley-webchat" || typeof data.open !== "boolean") { return; }
    isOpen = data.open;
    size();
  });
  if (narrow.addEventListener) { narrow.addEventListener("change", size); }
  size();
  function mount() { document.body.appendChild(frame); }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
