// The status page: renders what /api/events sends (Server-Sent Events), nothing else.
// Every text goes in through textContent, never as HTML: device ids and messages come from
// the config and the devices.
"use strict";

const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
let state = null;
let skew = 0; // the gateway's clock minus the browser's, in ms ("3s ago" on the gateway's clock)

function t(key, params) {
  let text = S[key] === undefined ? key : S[key];
  for (const [k, v] of Object.entries(params || {})) text = text.split("{" + k + "}").join(String(v));
  return text;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function ago(iso) {
  if (!iso) return t("never");
  const s = Math.floor((Date.now() + skew - Date.parse(iso)) / 1000);
  if (s < 0) return iso;
  if (s >= 86400) return t("ago_d", {n: Math.floor(s / 86400)});
  if (s >= 3600) return t("ago_h", {n: Math.floor(s / 3600)});
  if (s >= 60) return t("ago_m", {n: Math.floor(s / 60)});
  return t("ago_s", {n: s});
}

function values(v) {
  const keys = Object.keys(v || {}).sort();
  return keys.length ? keys.map((k) => k + "=" + v[k]).join(", ") : "-";
}

function said(items) {
  return (items || []).map((i) => t(i.id, i.params)).join(", ");
}

function renderDevices() {
  const body = document.querySelector("#devices tbody");
  body.replaceChildren();
  let online = 0;
  for (const d of state.devices) {
    const tr = el("tr");
    tr.dataset.device = d.device_id;
    if (d.online === true) online++;
    tr.className = d.online === null ? "unheard" : d.online ? "" : "offline";
    const on = d.online === null ? t("not_heard") : d.online ? t("online_yes")
      : t("online_no") + (d.why ? ": " + d.why : "");
    tr.append(el("td", d.device_id), el("td", d.site_id), el("td", d.kind),
      el("td", on, "online"), el("td", ago(d.last_seen), "seen"),
      el("td", d.battery === null || d.battery === undefined ? "-" : Math.round(d.battery) + "%"),
      el("td", values(d.values), "value"));
    body.append(tr);
  }
  document.getElementById("device-summary").textContent =
    t("summary", {online: online, total: state.devices.length});
}

function renderAlerts() {
  const body = document.querySelector("#alerts tbody");
  body.replaceChildren();
  for (const a of state.alerts) {
    const tr = el("tr");
    tr.dataset.alert = a.alert_id;
    const what = el("td", a.type + " (" + a.severity + ") ");
    if (a.test) what.append(el("span", t("test_mark"), "test"));
    const action = el("td");
    if (a.can_ack) {
      const b = el("button", t("ack_button"), "ack");
      b.addEventListener("click", () => acknowledge(a.alert_id, action, b));
      action.append(b);
    } else {
      action.append(el("span", t("ack_real"), "hint"));
    }
    tr.append(what, el("td", a.site_id), el("td", a.raised_at), el("td", a.message), action);
    body.append(tr);
  }
  document.getElementById("no-alerts").hidden = state.alerts.length > 0;
}

function renderWalk() {
  const box = document.getElementById("walk");
  box.replaceChildren();
  const w = state.walk;
  if (!w) {
    box.append(el("p", t("walk_none"), "hint"));
    return;
  }
  box.append(el("p", t("walk_progress", {heard: w.heard, total: w.total, user: w.user}),
    "progress"));
  const ul = el("ul");
  for (const d of w.devices) {
    const li = el("li", d.device_id + ": " + (d.heard_at ? t("walk_heard") + " " + said(d.said)
      : t("walk_waiting")), d.heard_at ? "ticked" : "");
    li.dataset.walkDevice = d.device_id;
    ul.append(li);
  }
  box.append(ul);
  if (w.unconfigured.length) {
    box.append(el("p", t("walk_unconfigured",
      {list: w.unconfigured.map((u) => u.protocol + " " + u.key).join(", ")}), "blind"));
  }
}

function renderCoverage() {
  const box = document.getElementById("coverage");
  box.replaceChildren();
  for (const c of state.coverage) {
    const div = el("div");
    div.dataset.site = c.site_id;
    div.append(el("h3", c.site_id));
    div.append(el("p", t("watching") + ": " + (c.watching.join(", ") || t("nothing"))));
    for (const b of c.blind) div.append(el("p", t("blind") + ": " + b.rule + ": " + b.why, "blind"));
    box.append(div);
  }
}

function render() {
  document.getElementById("title").textContent = t("title", {gateway: state.gateway_id});
  document.getElementById("updated").textContent = t("updated", {ts: state.ts});
  renderAlerts();
  renderWalk();
  renderDevices();
  renderCoverage();
}

async function acknowledge(alertId, cell, button) {
  button.disabled = true;
  let answer = {ok: false, error: "no answer"};
  try {
    const r = await fetch("/api/ack", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({alert_id: alertId}), credentials: "same-origin"});
    answer = await r.json();
  } catch (e) {
    answer = {ok: false, error: String(e)};
  }
  cell.replaceChildren(el("span", answer.ok ? t("ack_done") : t("ack_failed", {error: answer.error}),
    answer.ok ? "acked" : "error"));
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("state", (e) => {
    state = JSON.parse(e.data);
    skew = Date.parse(state.ts) - Date.now();
    live.className = "";
    live.textContent = t("connected");
    render();
  });
  source.onerror = () => {
    live.className = "off";
    live.textContent = t("disconnected");
    // EventSource retries by itself; a 401 (token changed) needs the login form again.
    fetch("/api/state", {credentials: "same-origin"}).then((r) => {
      if (r.status === 401) location.reload();
    }).catch(() => {});
  };
}

function start() {
  for (const e of document.querySelectorAll("[data-s]")) e.textContent = t(e.dataset.s);
  if (!boot.authed) {
    document.getElementById("login").hidden = false;
    if (boot.error) document.getElementById("login-error").textContent = t(boot.error);
    return;
  }
  document.getElementById("app").hidden = false;
  connect();
  // "3s ago" keeps counting between two states.
  setInterval(() => {
    if (!state) return;
    for (const d of state.devices) {
      const cell = document.querySelector('tr[data-device="' + CSS.escape(d.device_id) + '"] td.seen');
      if (cell) cell.textContent = ago(d.last_seen);
    }
  }, 1000);
}

start();
