// Drover dashboard: confirm actions, refresh the page's main section when
// the store changes (server-sent events), follow a pod's log.
"use strict";

document.addEventListener("submit", (e) => {
  const form = e.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) e.preventDefault();
});

let refreshing = false;
let pending = false;

function editing() {
  const a = document.activeElement;
  return a && a.closest("#main") && (a.tagName === "INPUT" || a.tagName === "SELECT");
}

async function refresh() {
  if (refreshing || editing()) { pending = true; return; }
  refreshing = true;
  pending = false;
  try {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    const r = await fetch(url, { headers: { "Accept": "text/html" } });
    if (r.ok) {
      const main = document.getElementById("main");
      const log = document.getElementById("log");
      const kept = log ? [log.dataset.src, log.textContent] : null;
      main.innerHTML = await r.text();
      const fresh = document.getElementById("log");
      if (kept && fresh && fresh.dataset.src === kept[0]) fresh.textContent = kept[1];
      main.dataset.refreshed = String(Date.now());
      followLog();
    }
  } finally {
    refreshing = false;
    if (pending) setTimeout(refresh, 100);
  }
}

document.addEventListener("focusout", () => { if (pending) setTimeout(refresh, 50); });

function live() {
  const watched = (document.body.dataset.live || "").split(",").filter(Boolean);
  if (watched.length === 0) return;
  const dot = document.getElementById("live-state");
  const es = new EventSource("/ui/live");
  es.onopen = () => dot && dot.classList.add("on");
  es.onerror = () => dot && dot.classList.remove("on");
  es.addEventListener("change", (e) => {
    const kinds = JSON.parse(e.data).kinds || [];
    if (kinds.some((k) => watched.includes(k))) refresh();
  });
}

let following = null;

async function followLog() {
  const pre = document.getElementById("log");
  if (!pre || !pre.dataset.src || following === pre.dataset.src) return;
  following = pre.dataset.src;
  try {
    const r = await fetch(pre.dataset.src + "?follow=true");
    if (!r.ok) { pre.textContent = await r.text(); return; }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const target = document.getElementById("log");
      if (!target) break;
      target.textContent += decoder.decode(value, { stream: true });
      target.scrollTop = target.scrollHeight;
    }
  } catch (err) {
    const target = document.getElementById("log");
    if (target) target.textContent += "\n[log stream ended: " + err + "]";
  } finally {
    following = null;
  }
}

live();
followLog();
