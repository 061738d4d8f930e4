// joblog's dashboard: live updates from the native API's event stream
// (/api/v1/events, Server-Sent Events; the browser sends the session cookie
// and resumes with Last-Event-ID by itself), and the grid's "select the
// page" box. The pages work without this script, only not live.
"use strict";

// The platform's codes, to name a status the stream reports by number
// (docs/domain.md §2).
const STATES = { 0: "Ready", 1: "Suspended", 2: "Locked", 3: "Completed" };
const REASONS = {
  0: "Waiting For Resources", 10: "Waiting", 11: "Retrying", 12: "Paused",
  20: "In Progress", 21: "Pausing", 22: "Canceling",
  30: "Succeeded", 31: "Failed", 32: "Canceled",
};

function setStatus(el, statecode, statuscode) {
  const state = el.querySelector('[data-col="state"]');
  const reason = el.querySelector('[data-col="reason"]');
  if (state) state.textContent = STATES[statecode] ?? String(statecode);
  if (reason) {
    reason.textContent = REASONS[statuscode] ?? String(statuscode);
    reason.className = reason.className.replace(/\br\d+\b/, "r" + statuscode);
  }
}

function live() {
  const indicator = document.getElementById("live");
  if (!indicator || typeof EventSource === "undefined") return;
  const grid = document.querySelector("form#grid tbody");
  const jobName = document.getElementById("job-name");
  const jobId = jobName ? jobName.dataset.id : null;
  const banner = document.getElementById("newjobs");
  let fresh = 0;
  const es = new EventSource("/api/v1/events");
  es.onopen = () => { indicator.textContent = "● live"; indicator.classList.add("on"); };
  es.onerror = () => { indicator.textContent = "○ reconnecting"; indicator.classList.remove("on"); };
  // An event's data names the job and, in `to`, its status after
  // (docs/http.md, "Live events").
  const parse = (ev) => {
    try {
      const d = JSON.parse(ev.data);
      const to = d.to || d;
      d.statecode = to.statecode;
      d.statuscode = to.statuscode;
      return d;
    } catch (_) { return null; }
  };
  es.addEventListener("transition", (ev) => {
    const d = parse(ev);
    if (!d) return;
    if (grid) {
      const row = grid.querySelector('tr[data-id="' + CSS.escape(String(d.job)) + '"]');
      if (row) {
        setStatus(row, d.statecode, d.statuscode);
        row.classList.remove("changed");
        void row.offsetWidth; // restart the flash
        row.classList.add("changed");
      }
    }
    if (jobId && d.job === jobId) {
      const p = document.querySelector("p.status");
      if (p) setStatus(p, d.statecode, d.statuscode);
      // The timeline and the buttons follow from the new status: reload
      // the page once the burst of events is over.
      clearTimeout(live.reload);
      live.reload = setTimeout(() => location.reload(), 800);
    }
  });
  es.addEventListener("created", () => {
    if (!banner) return;
    fresh += 1;
    document.getElementById("newcount").textContent = String(fresh);
    banner.hidden = false;
  });
  // A deletion names how many jobs went, not which: the grid says so and
  // offers to reload.
  let gone = 0;
  es.addEventListener("deleted", (ev) => {
    const d = parse(ev);
    const note = document.getElementById("deletedjobs");
    if (!d || !note) return;
    gone += Number(d.deleted) || 0;
    document.getElementById("deletedcount").textContent = String(gone);
    note.hidden = false;
  });
}

function selection() {
  const all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('form#grid tbody input[name="id"]')) box.checked = all.checked;
  });
}

document.addEventListener("DOMContentLoaded", () => { live(); selection(); });
