// Perdure's admin UI: a page over the admin API, no build step, no dependencies.
// Routes (in the URL's hash): #/invocations?<filters>, #/invocations/<id>, #/services,
// #/state?service=&key=. Every value shown comes from users' data, so text goes in by
// textContent only (never innerHTML).
"use strict";

const STATUSES = ["scheduled", "pending", "running", "suspended", "backing-off",
  "completed", "failed", "cancelled", "killed"];
const view = document.getElementById("view");
const notice = document.getElementById("notice");
const tokenForm = document.getElementById("token-form");

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style") el.setAttribute("style", v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...children) {
  // Arrays and nulls among the children, as h() takes them.
  view.replaceChildren(...h("div", {}, ...children).childNodes);
}

function say(message, ok) {
  notice.textContent = message;
  notice.className = ok ? "ok" : "";
  notice.hidden = !message;
}

// --- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem("perdure-admin-token");
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "the admin API cannot be reached: " + err.message);
  }
  if (res.status === 401) {
    tokenForm.hidden = false;
    throw new ApiError(401, "the admin API wants a token: enter it above");
  }
  const text = await res.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch (_) { doc = null; }
  if (!res.ok) {
    const why = doc && (doc.message || doc.detail) ? (doc.message || JSON.stringify(doc.detail)) : text;
    throw new ApiError(res.status, `${res.status}: ${why}`);
  }
  return doc;
}

tokenForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("perdure-admin-token", document.getElementById("token").value);
  tokenForm.hidden = true;
  route();
});

// --- formatting ----------------------------------------------------------------------------

function age(ms) {
  if (ms === null || ms === undefined) return "";
  let s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  return Math.floor(ms / 60000) + "m " + Math.round((ms % 60000) / 1000) + "s";
}

function when(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC") : "";
}

function target(row) {
  return row.key !== null && row.key !== undefined
    ? `${row.service}/${row.key}/${row.handler}` : `${row.service}/${row.handler}`;
}

function badge(status) { return h("span", { class: "badge " + status, "data-status": status }, status); }

function payload(p) {
  if (!p) return "";
  const text = p.text !== undefined ? p.text : "base64:" + p.base64;
  return text + (p.truncated ? " …" : "");
}

// --- pages ---------------------------------------------------------------------------------

async function invocationsPage(params) {
  const form = h("form", { class: "filters", id: "filters" },
    h("label", {}, "status", h("select", { name: "status" },
      h("option", { value: "" }, "any"),
      STATUSES.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)))),
    ["service", "handler", "key"].map((n) =>
      h("label", {}, n, h("input", { name: n, value: params.get(n) || "", size: 14 }))),
    h("label", {}, "created after", h("input", { name: "created_after", value: params.get("created_after") || "", placeholder: "2026-12-01T10:00Z", size: 16 })),
    h("label", {}, "created before", h("input", { name: "created_before", value: params.get("created_before") || "", size: 16 })),
    h("button", { type: "submit" }, "Filter"),
    h("button", { type: "button", class: "secondary", onclick: () => route() }, "Refresh"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = "#/invocations?" + q.toString();
  });
  const body = h("tbody");
  const table = h("table", { id: "invocations" },
    h("thead", {}, h("tr", {}, ["id", "target", "status", "age", "attempts", "steps", "last error"].map((c) => h("th", {}, c)))),
    body);
  const more = h("button", { class: "secondary", id: "more", hidden: true }, "More");
  const count = h("span", { class: "muted" });
  show(h("h1", {}, "Invocations"), form, table, h("div", { class: "pager" }, more, count));

  const query = new URLSearchParams();
  for (const k of ["status", "service", "handler", "key", "created_after", "created_before"]) {
    if (params.get(k)) query.set(k, params.get(k));
  }
  query.set("limit", "50");
  let shown = 0;
  async function load(cursor) {
    if (cursor) query.set("cursor", cursor);
    const page = await api("GET", "/invocations?" + query.toString());
    for (const row of page.invocations) {
      body.append(h("tr", { "data-id": row.id },
        h("td", { class: "mono" }, h("a", { href: "#/invocations/" + encodeURIComponent(row.id) }, row.id)),
        h("td", {}, target(row)),
        h("td", {}, badge(row.status)),
        h("td", { title: when(row.created_ms) }, age(row.created_ms)),
        h("td", {}, row.attempts),
        h("td", {}, row.journal_length),
        h("td", { class: "mono" }, (row.failure && row.failure.message) || (row.last_error || "").split("\n").slice(-2).join(" ").slice(0, 120))));
    }
    shown += page.invocations.length;
    count.textContent = shown ? `${shown} shown` : "no invocation matches";
    more.hidden = !page.next_cursor;
    more.onclick = () => load(page.next_cursor).catch((e) => say(e.message));
  }
  await load(null);
}

function errorBox(text) {
  // The error's last line, its stack folded under it.
  const lines = text.split("\n").filter((l) => l.trim());
  const last = lines.length ? lines[lines.length - 1] : text;
  if (lines.length < 2) return h("pre", { class: "error" }, text);
  return h("details", { class: "error" }, h("summary", { class: "mono" }, last), h("pre", { class: "error" }, text));
}

function timelineRows(doc) {
  // Entries and failed attempts, in time order, each with where it sits on a common track.
  const items = doc.journal.map((e) => ({
    at: e.journaled_ms, end: e.completed_ms !== undefined ? e.completed_ms : null, entry: e,
  }));
  for (const f of doc.failed_attempts || []) items.push({ at: f.at_ms, end: f.at_ms, attempt: f });
  const known = items.filter((i) => i.at !== null && i.at !== undefined);
  const start = doc.created_ms;
  const ends = known.map((i) => (i.end === null ? Date.now() : i.end));
  const stop = Math.max(start + 1, doc.completed_ms || 0, ...ends);
  const span = stop - start;
  items.sort((a, b) => (a.at ?? Infinity) - (b.at ?? Infinity) || (a.attempt ? 1 : 0) - (b.attempt ? 1 : 0));
  let previous = start;
  return items.map((i) => {
    const left = i.at === null || i.at === undefined ? null : ((i.at - start) / span) * 100;
    const endAt = i.end === null ? Date.now() : i.end;
    const width = left === null ? 0 : Math.max(((endAt - i.at) / span) * 100, 0.4);
    const since = left === null ? "" : "+" + duration(i.at - previous);
    if (left !== null) previous = Math.max(previous, endAt);
    if (i.attempt) {
      return h("tr", { class: "attempt-failed" },
        h("td", {}, ""), h("td", {}, "attempt " + i.attempt.attempt + " failed"), h("td", {}, ""),
        h("td", { class: "bar" }, h("div", { class: "track" }, h("div", { class: "span failed", style: `left:${left}%;width:0.6%` }))),
        h("td", {}, since), h("td", {}, errorBox(i.attempt.error)));
    }
    const e = i.entry;
    const failed = !!e.failure;
    const state = e.status === "pending" ? "pending" : failed ? "failed" : "";
    const took = e.status === "pending" ? "waiting " + duration(Date.now() - i.at) : duration(i.end - i.at);
    const detail = failed ? h("pre", { class: "error" }, `${e.failure.code}: ${e.failure.message}`)
      : e.result ? h("span", { class: "mono" }, payload(e.result))
      : e.call ? h("span", {}, "→ " + target(e.call) + (e.callee ? " (" + e.callee + ")" : ""))
      : e.wake_at_ms ? h("span", {}, "wakes " + when(e.wake_at_ms))
      : e.result_bytes !== undefined ? h("span", { class: "muted" }, e.result_bytes + " bytes") : "";
    return h("tr", { class: "entry", "data-index": e.index },
      h("td", {}, e.index), h("td", {}, h("b", {}, e.name || "(unnamed)"), " ", h("span", { class: "muted" }, e.kind)),
      h("td", {}, badge(e.status === "pending" ? "pending" : failed ? "failed" : "completed")),
      h("td", { class: "bar" }, left === null ? h("span", { class: "muted" }, "no time recorded")
        : h("div", { class: "track" }, h("div", { class: "span " + state, style: `left:${left}%;width:${width}%`, title: took }))),
      h("td", {}, since, left === null ? "" : h("div", { class: "muted" }, took)),
      h("td", {}, detail));
  });
}

async function invocationPage(id, params) {
  const results = params.get("results") === "true";
  const doc = await api("GET", `/invocations/${encodeURIComponent(id)}?results=${results}`);
  const act = (label, method, path, cls, ask) => h("button", {
    class: cls, "data-action": label.toLowerCase().replace(" ", "-"),
    onclick: async () => {
      if (ask && !confirm(ask)) return;
      try {
        await api(method, path);
        say(`${label}: accepted`, true);
        setTimeout(route, 600);
      } catch (e) { say(e.message); }
    },
  }, label);
  const ended = ["completed", "failed", "cancelled", "killed"].includes(doc.status);
  const base = `/invocations/${encodeURIComponent(id)}`;
  const actions = h("div", { class: "actions" },
    ended ? act("Purge", "DELETE", base + "?mode=purge", "secondary", "Forget this invocation and its result?") : [
      act("Cancel", "DELETE", base + "?mode=cancel", "", null),
      act("Kill", "DELETE", base + "?mode=kill", "danger", "Kill it? Compensations will not run."),
      doc.status === "backing-off" ? act("Retry now", "PATCH", base + "/retry-now", "secondary", null) : null,
    ],
    h("button", { class: "secondary", onclick: () => route() }, "Refresh"),
    h("a", { href: `#/invocations/${encodeURIComponent(id)}?results=${!results}` }, results ? "hide results" : "show results"));
  const facts = [
    ["target", target(doc)], ["status", badge(doc.status)], ["handler kind", doc.handler_kind],
    ["created", when(doc.created_ms) + " (" + age(doc.created_ms) + " ago)"],
    ["completed", doc.completed_ms ? when(doc.completed_ms) + " (took " + duration(doc.completed_ms - doc.created_ms) + ")" : null],
    ["attempts", doc.attempts], ["next attempt", doc.next_attempt_ms ? when(doc.next_attempt_ms) : null],
    ["idempotency key", doc.idempotency_key], ["caller", doc.caller ? h("a", { href: "#/invocations/" + doc.caller }, doc.caller) : null],
    ["partition", doc.partition], ["input", doc.input_bytes + " bytes"],
    ["result", doc.result ? h("span", { class: "mono" }, payload(doc.result)) : doc.result_bytes !== undefined ? doc.result_bytes + " bytes" : null],
    ["failure", doc.failure ? `${doc.failure.code}: ${doc.failure.message}` : null],
    ["waiting on", doc.suspended_on && doc.suspended_on.length ? "entries " + doc.suspended_on.join(", ") : null],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  show(
    h("h1", {}, "Invocation ", h("span", { class: "mono", id: "invocation-id" }, id)),
    actions,
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-fact": k }, v)])),
    doc.last_error ? [h("h2", {}, ended ? "Error of its last failed attempt" : "Last error"), h("pre", { class: "error", id: "last-error" }, doc.last_error)] : null,
    h("h2", {}, `Journal (${doc.journal.length} entries)`),
    h("table", { class: "timeline", id: "journal" },
      h("thead", {}, h("tr", {}, ["#", "step", "status", "timeline", "after / took", "outcome"].map((c) => h("th", {}, c)))),
      h("tbody", {}, timelineRows(doc))));
}

async function servicesPage() {
  const doc = await api("GET", "/services");
  show(h("h1", {}, "Services"),
    h("table", { id: "services" },
      h("thead", {}, h("tr", {}, ["service", "kind", "handlers", "worker"].map((c) => h("th", {}, c)))),
      h("tbody", {}, doc.services.map((s) => h("tr", {},
        h("td", {}, h("b", {}, s.name)), h("td", {}, s.kind || "service"),
        h("td", {}, s.handlers.map((x) => h("div", {}, x.name, " ", h("span", { class: "muted" }, x.kind || "")))),
        h("td", { class: "mono" }, s.worker || ""))))));
}

async function statePage(params) {
  const service = params.get("service") || "";
  const key = params.get("key") || "";
  const form = h("form", { class: "filters", id: "state-form" },
    h("label", {}, "service", h("input", { name: "service", value: service })),
    h("label", {}, "key", h("input", { name: "key", value: key })),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#/state?" + new URLSearchParams(new FormData(form)).toString();
  });
  show(h("h1", {}, "Object state"), form);
  if (!service || !key) return;
  const doc = await api("GET", `/services/${encodeURIComponent(service)}/state/${encodeURIComponent(key)}`);
  const names = Object.keys(doc.state).sort();
  view.append(
    h("dl", { class: "facts" }, h("dt", {}, "version"), h("dd", { class: "mono" }, doc.version),
      h("dt", {}, "held by"), h("dd", {}, doc.locked_by ? h("a", { href: "#/invocations/" + doc.locked_by }, doc.locked_by) : "nobody")),
    h("h2", {}, `${names.length} values`),
    h("table", { id: "state" },
      h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "value"))),
      h("tbody", {}, names.map((n) => h("tr", { "data-name": n }, h("td", {}, n), h("td", { class: "mono" }, payload(doc.state[n])))))));
}

// --- routing -------------------------------------------------------------------------------

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/invocations";
  const [path, qs] = hash.split("?");
  const params = new URLSearchParams(qs || "");
  const parts = path.split("/").filter(Boolean);
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  say("");
  try {
    if (parts[0] === "invocations" && parts[1]) await invocationPage(decodeURIComponent(parts[1]), params);
    else if (parts[0] === "services") await servicesPage();
    else if (parts[0] === "state") await statePage(params);
    else await invocationsPage(params);
  } catch (e) {
    say(e.message);
    return;
  }
  await warnBlocked();
}

// A partition stopped at a record its worker cannot read: every page says so.
async function warnBlocked() {
  try {
    const blocked = (await api("GET", "/cluster")).blocked || [];
    if (blocked.length) say(blocked.map((b) => `partition ${b.partition} ${b.why}`).join("; "));
  } catch (e) {
    // The cluster's view is a bonus here: the page itself loaded.
  }
}

window.addEventListener("hashchange", route);
route();
