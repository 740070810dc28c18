// The Flock cluster page: draws the manager's snapshot (api/cluster) as node boxes and
// follows api/stream (server-sent events) to redraw on every change. Plain DOM, no
// libraries; every value goes in through textContent, never as HTML.
"use strict";

(function () {
  const nodesEl = document.getElementById("nodes");
  const emptyEl = document.getElementById("empty");
  const summaryEl = document.getElementById("summary");
  const linkEl = document.getElementById("link");
  const boxes = new Map(); // node id -> {el, key}
  const POLL_MS = 2000;

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  function bytes(size) {
    let unit = 0;
    while (size >= 1024 && unit < UNITS.length - 1) { size /= 1024; unit += 1; }
    return (Number.isInteger(size) ? size : Number(size.toPrecision(3))) + " " + UNITS[unit];
  }

  function cpus(value) {
    return String(Number(value.toFixed(2)));
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function meter(kind, label, reserved, total, shown) {
    const box = el("div", "meter " + kind);
    box.dataset.reserved = String(reserved);
    box.dataset.total = String(total);
    const head = el("div", "meter-label");
    head.append(el("span", "name", label), el("span", "value", shown));
    const bar = el("div", "bar");
    const fill = el("div", "fill");
    const percent = total > 0 ? (100 * reserved) / total : (reserved > 0 ? 100 : 0);
    if (percent > 100) box.classList.add("over");
    fill.style.width = Math.min(100, percent).toFixed(1) + "%";
    bar.title = percent.toFixed(0) + "% reserved";
    bar.append(fill);
    box.append(head, bar);
    return box;
  }

  function containerItem(c) {
    const item = el("li", "container");
    item.dataset.name = c.name;
    item.dataset.state = c.state;
    item.title = c.id;
    item.append(el("span", "container-name", c.name || c.id),
                el("span", "state " + c.state, c.state),
                el("span", "container-image", c.image));
    return item;
  }

  function nodeBox(n) {
    const box = el("section", "node " + n.health);
    box.dataset.node = n.name;
    box.dataset.health = n.health;
    const head = el("div", "node-head");
    head.append(el("h2", "node-name", n.name), el("span", "badge " + n.health, n.health));
    if (n.availability && n.availability !== "active") {
      head.append(el("span", "badge drain", n.availability));
    }
    box.append(head);
    const labels = Object.entries(n.labels || {}).map(([k, v]) => k + "=" + v).join("\n");
    const addr = el("p", "node-addr", n.addr);
    if (labels) addr.title = labels;
    box.append(addr);
    if (n.error) box.append(el("p", "node-error", n.error));
    box.append(
      meter("cpu", "CPU", n.reserved_cpus, n.cpus, cpus(n.reserved_cpus) + " / " + n.cpus),
      meter("memory", "Memory", n.reserved_memory, n.memory,
            bytes(n.reserved_memory) + " / " + bytes(n.memory)));
    const list = el("ul", "containers");
    for (const c of n.containers) list.append(containerItem(c));
    box.append(list);
    if (n.container_count === 0) box.append(el("p", "containers-none", "no containers"));
    const more = n.container_count - n.containers.length;
    if (more > 0) box.append(el("p", "containers-more", "and " + more + " more"));
    return box;
  }

  const jobsEl = document.getElementById("jobs");
  const jobRowsEl = document.getElementById("job-rows");

  function moment(epoch) {
    // UTC to the second, as `flock cron ls` prints it
    return epoch ? new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z"
                 : "-";
  }

  function jobRow(job) {
    const row = el("tr", "job");
    row.dataset.job = job.name;
    const schedule = job.schedule + (job.time_zone && job.time_zone !== "UTC"
                                     ? " (" + job.time_zone + ")" : "");
    const next = el("td", "next", job.suspended ? "suspended" : moment(job.next_run));
    const last = el("td", "last");
    if (job.last) {
      let text = job.last.result;
      if (job.last.exit_code !== null && job.last.result !== "running") {
        text += " (" + job.last.exit_code + ")";
      }
      const badge = el("span", "result " + job.last.result, text);
      badge.title = [moment(job.last.scheduled), job.last.node, job.last.reason]
        .filter(Boolean).join(" · ");
      last.append(badge);
    } else {
      last.textContent = "never ran";
    }
    row.dataset.result = job.last ? job.last.result : "";
    row.append(el("td", "name", job.name), el("td", "schedule", schedule), next, last);
    return row;
  }

  function renderJobs(jobs) {
    jobsEl.hidden = jobs.length === 0;
    jobRowsEl.replaceChildren(...jobs.map(jobRow));
  }

  function render(snap) {
    renderJobs(snap.jobs || []);
    const nodes = snap.nodes || [];
    const containers = nodes.reduce((sum, n) => sum + n.container_count, 0);
    summaryEl.textContent = nodes.length + (nodes.length === 1 ? " node, " : " nodes, ") +
      containers + (containers === 1 ? " container" : " containers") +
      " · strategy " + snap.strategy + " · manager " + snap.manager;
    emptyEl.hidden = nodes.length > 0;
    const seen = new Set();
    let previous = null;
    for (const n of nodes) {
      seen.add(n.id);
      const key = JSON.stringify(n);
      let entry = boxes.get(n.id);
      if (!entry || entry.key !== key) {
        const fresh = nodeBox(n);
        if (entry) entry.el.replaceWith(fresh);
        entry = {el: fresh, key: key};
        boxes.set(n.id, entry);
      }
      // keep the snapshot's order (by name)
      const want = previous ? previous.nextSibling : nodesEl.firstChild;
      if (want !== entry.el) nodesEl.insertBefore(entry.el, want);
      previous = entry.el;
    }
    for (const [id, entry] of boxes) {
      if (!seen.has(id)) { entry.el.remove(); boxes.delete(id); }
    }
    document.body.dataset.generation = String(Number(document.body.dataset.generation || 0) + 1);
  }

  function linkState(state, text) {
    linkEl.className = "link " + state;
    linkEl.textContent = text;
  }

  async function poll() {
    try {
      const answer = await fetch("api/cluster", {cache: "no-store"});
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      render(await answer.json());
      linkState("live", "polling");
    } catch (err) {
      linkState("lost", "manager unreachable: " + err.message);
    }
    setTimeout(poll, POLL_MS);
  }

  function follow() {
    const source = new EventSource("api/stream");
    source.addEventListener("cluster", (event) => {
      render(JSON.parse(event.data));
      linkState("live", "live");
    });
    source.onopen = () => linkState("live", "live");
    source.onerror = () => linkState("lost", "reconnecting…"); // EventSource retries
  }

  if (typeof EventSource === "function") follow(); else poll();
})();
