// Silo's web UI script (docs/ui.md): live refresh of the queue counts, confirmation dialogs for
// actions, and a keyboard shortcut. Served as a file: the pages carry no inline script, so a
// Content-Security-Policy without 'unsafe-inline' holds. Every page works without it (an action
// then asks on a confirmation page instead of the dialog).
"use strict";

(function () {
  // Live regions: <div data-refresh="URL"> gets its content again from URL every few seconds
  // while the page is visible; a failed refresh marks it stale until the next one works.
  function live(el) {
    const every = Number(el.dataset.every || 2000);
    let busy = false;
    async function tick() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const res = await fetch(el.dataset.refresh, { cache: "no-store", credentials: "same-origin" });
        if (res.ok || res.status === 400) {
          el.innerHTML = await res.text();
          el.classList.remove("stale");
        } else {
          el.classList.add("stale");
        }
      } catch (err) {
        el.classList.add("stale");
      } finally {
        busy = false;
      }
    }
    setInterval(tick, every);
    document.addEventListener("visibilitychange", tick);
  }

  // Forms with data-confirm open the dialog first; its OK submits them with confirmed=1.
  function confirmations() {
    const dialog = document.getElementById("confirm");
    if (!dialog || typeof dialog.showModal !== "function") return;
    const text = dialog.querySelector(".confirm-text");
    const ok = document.getElementById("confirm-ok");
    let pending = null;
    document.addEventListener("submit", function (ev) {
      const form = ev.target;
      if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
      ev.preventDefault();
      pending = form;
      text.textContent = form.dataset.confirm;
      ok.textContent = form.dataset.confirmLabel || "Confirm";
      ok.className = form.dataset.danger ? "danger" : "primary";
      dialog.returnValue = "";
      dialog.showModal();
    });
    dialog.addEventListener("close", function () {
      const form = pending;
      pending = null;
      if (!form || dialog.returnValue !== "ok") return;
      const field = form.querySelector("input[name=confirmed]");
      if (field) field.value = "1";
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      form.classList.add("working");
      form.submit();
    });
  }

  // "/" jumps to the job id box, as in many tools.
  function shortcuts() {
    document.addEventListener("keydown", function (ev) {
      if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const t = ev.target;
      if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
      const box = document.getElementById("goto-id");
      if (box) {
        ev.preventDefault();
        box.focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(live);
    confirmations();
    shortcuts();
  });
})();
