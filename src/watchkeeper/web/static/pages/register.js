"use strict";
// Asking for an account: the API creates it pending, and an admin approves it on the admin page.
document.getElementById("register-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const form = submit.currentTarget, error = document.getElementById("register-error");
  error.hidden = true;
  if (form.password.value !== form.repeat.value) {
    error.textContent = "The two passwords differ.";
    error.hidden = false;
    form.repeat.focus();
    return;
  }
  const body = {name: form.name.value.trim(), password: form.password.value};
  if (form.email.value.trim()) body.email = form.email.value.trim();
  // Not wk.api: this page has no session, so no CSRF token either.
  const response = await fetch("/api/v1/auth/register", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (response.ok) {
    form.hidden = true;
    const done = document.getElementById("register-done");
    done.hidden = false;
    done.focus();
    return;
  }
  const problem = await response.json().catch(() => ({}));
  error.textContent = problem.detail || "The account could not be created.";
  error.hidden = false;
});
