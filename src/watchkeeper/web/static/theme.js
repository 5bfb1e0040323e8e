// Before the page paints: the theme this browser last used (the server copy arrives with app.js).
(function () {
  var saved = null;
  try { saved = localStorage.getItem("wk-theme"); } catch (e) { /* storage blocked */ }
  var dark = saved ? saved === "dark" : window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
})();
