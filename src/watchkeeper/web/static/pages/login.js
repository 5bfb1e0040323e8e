"use strict";
// Signing in through the API; the session cookie it sets is what the pages use.
document.getElementById("login-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const form = submit.currentTarget, error = document.getElementById("login-error");
  error.hidden = true;
  const response = await fetch("/api/v1/auth/login", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({name: form.name.value, password: form.password.value})});
  if (response.ok) {  // back to the page asked for, only ever on this server
    const next = new URL(form.dataset.next || "/", location.origin);
    location.assign(next.origin === location.origin ? next.pathname + next.search : "/");
    return;
  }
  const problem = await response.json().catch(() => ({}));
  error.textContent = problem.detail || "Sign-in failed.";
  error.hidden = false;
  form.password.focus();
});
