// backfill's web console: the pages' live parts, through the /v1 API with the sign-in cookie and the
// CSRF header. No build step, no library.
"use strict";

(function () {
  const FINAL = ["completed", "completed_with_errors", "failed", "cancelled", "interrupted", "partially_failed"];
  const TRIGGERS = {passive: "passive (trigger off)", sent_now: "sent now", scheduled: "scheduled",
    discarded: "discarded (delay already passed)", outside_window: "outside the trigger window",
    future: "future-dated (never triggers)", no_campaign: "no campaign on that event"};
  // A campaign's columns in the dry run's preview, in the report's order (worker/ops/report.py).
  const CAMPAIGN_KINDS = ["sent_now", "scheduled", "discarded", "outside_window", "future"];
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  // A call to the API: JSON in and out; the error's message on a non-2xx answer.
  async function api(method, url, body) {
    const headers = {"X-CSRF-Token": csrf};
    let payload = body;
    if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const answer = await fetch(url, {method, headers, body: payload, credentials: "same-origin"});
    let data = null;
    try { data = await answer.json(); } catch (e) { data = null; }
    if (!answer.ok) {
      const error = (data && data.error) || {code: "http_" + answer.status, message: answer.statusText};
      const failure = new Error(error.message);
      failure.code = error.code;
      failure.status = answer.status;
      throw failure;
    }
    return data;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value; else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  const n = (value) => Number(value || 0).toLocaleString("en");

  // ---- the imports list: polled every second; the rate from one poll to the next
  function importsList() {
    const table = document.getElementById("imports");
    if (!table) return;
    const body = table.tBodies[0];
    const status = document.getElementById("filter-status");
    const name = document.getElementById("filter-name");
    const note = document.getElementById("list-note");
    const seen = {};
    let last = [];

    function keep(item) {
      const wanted = status.value;
      if (wanted === "running" && FINAL.includes(item.status)) return false;
      if (wanted && wanted !== "running" && item.status !== wanted) return false;
      const part = name.value.trim().toLowerCase();
      return !part || (item.source || "").toLowerCase().includes(part);
    }

    function row(item) {
      const running = !FINAL.includes(item.status);
      const before = seen[item.import_id];
      const now = Date.now();
      let rate = "";
      if (running && before && now > before.at && item.rows >= before.rows) {
        rate = Math.round((item.rows - before.rows) * 1000 / (now - before.at)) + " rows/s";
      }
      seen[item.import_id] = {rows: item.rows, at: now};
      const max = Math.max(item.rows_expected || 0, item.rows || 0, 1);
      const progress = el("progress", {max: String(max), value: String(item.rows || 0),
        "aria-label": "progress of " + item.import_id}, `${item.rows}/${item.rows_expected}`);
      const retries = el("td", {});
      if (item.retry_of) retries.append("retry of ", el("a", {href: "/imports/" + item.retry_of, text: item.retry_of}), " ");
      if (item.retried_by) retries.append("retried by ", el("a", {href: "/imports/" + item.retried_by, text: item.retried_by}));
      const stored = item.stored === null || item.stored === undefined ? "—" : (item.stored ? "yes" : "not yet");
      return el("tr", {"data-import": item.import_id, "data-status": item.status},
        el("td", {}, el("a", {href: "/imports/" + item.import_id, text: item.import_id})),
        el("td", {text: item.source || ""}),
        el("td", {}, el("span", {class: "status", "data-status": item.status, text: item.status})),
        el("td", {class: "progress-cell"}, progress, el("small", {text: ` ${n(item.rows)}/${n(item.rows_expected)} ${rate}`})),
        el("td", {class: "num", text: n(item.imported)}),
        el("td", {class: "num", text: n(item.duplicates)}),
        el("td", {class: "num", text: n(item.errors)}),
        el("td", {text: stored}),
        retries);
    }

    function draw() {
      const shown = last.filter(keep);
      // the keyboard's place survives the redraw (a link focused in the list stays focused)
      const active = document.activeElement;
      const place = active && active !== body && body.contains(active) && active.closest("tr") ?
        [active.closest("tr").dataset.import, active.getAttribute("href")] : null;
      body.replaceChildren(...(shown.length ? shown.map(row) : [el("tr", {}, el("td", {colspan: "9", text: "No imports."}))]));
      if (place) {
        const again = [...body.querySelectorAll("tr[data-import] a")].find(
          (link) => link.closest("tr").dataset.import === place[0] && link.getAttribute("href") === place[1]);
        if (again) again.focus({preventScroll: true});
      }
    }

    async function poll() {
      try {
        last = (await api("GET", "/v1/imports?limit=100")).imports;
        note.textContent = "";
        draw();
      } catch (e) {
        note.textContent = e.status === 401 ? "Signed out: reload the page to sign in again." : "Could not refresh: " + e.message;
        if (e.status === 401) return;
      }
      setTimeout(poll, 1000);
    }
    status.addEventListener("change", draw);
    name.addEventListener("input", draw);
    document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
    poll();
  }

  // ---- an import's page: its progress while it runs; the page (its report) once it has ended
  function importPage() {
    const live = document.getElementById("live");
    if (!live || live.dataset.final === "yes") return;
    const id = live.dataset.import;
    const bar = document.getElementById("progress");
    const text = document.getElementById("progress-text");
    const status = document.getElementById("status");
    let before = null;
    async function poll() {
      let item;
      try { item = await api("GET", "/v1/imports/" + id); } catch (e) { text.textContent = e.message; return; }
      bar.max = Math.max(item.rows_expected || 0, item.rows || 0, 1);
      bar.value = item.rows || 0;
      const now = Date.now();
      const rate = before && now > before.at ? Math.round((item.rows - before.rows) * 1000 / (now - before.at)) : null;
      before = {rows: item.rows, at: now};
      text.textContent = `${n(item.rows)}/${n(item.rows_expected)} rows, ${n(item.errors)} errors` +
        (rate !== null ? `, ${n(rate)} rows/s` : "") + (item.waiting ? `; waiting ${item.waiting}` : "");
      status.textContent = item.status;
      status.dataset.status = item.status;
      if (FINAL.includes(item.status)) {
        setTimeout(() => window.location.reload(), 300);
        return;
      }
      setTimeout(poll, 1000);
    }
    poll();
  }

  // ---- cancel, undo, retry: each confirmed first, then the API's own endpoint
  function actions() {
    const result = document.getElementById("action-result");
    for (const button of document.querySelectorAll("button[data-action]")) {
      button.addEventListener("click", async () => {
        if (!window.confirm(button.dataset.confirm)) return;
        button.disabled = true;
        try {
          const answer = await api("POST", button.dataset.action);
          result.textContent = button.id === "undo" ? "Undone." : (answer.cancelled ? "Cancelled." : "It had already ended.");
          setTimeout(() => window.location.reload(), 500);
        } catch (e) {
          result.textContent = `Refused (${e.code}): ${e.message}`;
          button.disabled = false;
        }
      });
    }
    const retry = document.getElementById("retry-form");
    if (retry) {
      retry.addEventListener("submit", async (event) => {
        event.preventDefault();
        const file = document.getElementById("retry-file").files[0];
        const submit = document.getElementById("retry");
        if (!file || submit.disabled || !window.confirm(retry.dataset.confirm)) return;
        submit.disabled = true;  // (one retry a submission: a double click would send two)
        const form = new FormData();
        form.append("file", file, file.name);
        try {
          const answer = await api("POST", retry.dataset.retry, form);
          window.location.assign("/imports/" + answer.import_id);
        } catch (e) {
          result.textContent = `Refused (${e.code}): ${e.message}`;
          submit.disabled = false;
        }
      });
    }
  }

  // ---- the new import wizard: upload once, inspect (again at each change), dry-run, import
  function wizard() {
    const input = document.getElementById("file");
    if (!input) return;
    const drop = document.getElementById("drop");
    const say = document.getElementById("upload-status");
    const optionsForm = document.getElementById("options");
    const mapping = {};
    const skip = new Set();
    let upload = null;
    let timer = null;

    function options() {
      const get = (name) => optionsForm.elements[name];
      // a people import takes no events options (the API refuses them): shown disabled, not sent
      const people = get("type").value === "people";
      for (const name of ["trigger", "create_people", "trigger_window"]) get(name).disabled = people;
      const chosen = {type: get("type").value, timezone: get("timezone").value.trim() || "UTC",
        mapping: {...mapping}, skip: [...skip]};
      if (!people) {
        Object.assign(chosen, {trigger: get("trigger").checked, create_people: get("create_people").checked,
          trigger_window: get("trigger_window").value.trim() || "72h"});
      }
      for (const name of ["identifier", "dialect", "encoding", "delimiter"]) {
        if (get(name).value) chosen[name] = get(name).value;
      }
      const formats = get("date_formats").value.split(",").map((s) => s.trim()).filter(Boolean);
      if (formats.length) chosen.date_formats = formats;
      return chosen;
    }

    // The service keeps BACKFILL_API_STAGED_MAX uploads for everybody, an hour each: the wizard deletes
    // the one it no longer needs (another file chosen, the page left). Imports started from it go on.
    function forget(old) {
      if (!old) return;
      fetch(`/v1/uploads/${old.upload_id}`, {method: "DELETE", headers: {"X-CSRF-Token": csrf},
        credentials: "same-origin", keepalive: true}).catch(() => {});
    }

    async function send(file) {
      say.textContent = `Uploading ${file.name}…`;
      const form = new FormData();
      form.append("file", file, file.name);
      const before = upload;
      try {
        upload = await api("POST", "/v1/uploads", form);
      } catch (e) {
        say.textContent = `Upload refused (${e.code}): ${e.message}`;
        return;
      }
      forget(before);
      say.textContent = `${upload.name}: ${n(upload.bytes)} bytes uploaded.`;
      document.getElementById("step-read").hidden = false;
      inspect();
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(inspect, 250);
    }

    // each reading asked is numbered: only the latest one's answer is shown (an earlier one, slower to
    // come back, would show the file as other options, or another file, read it)
    let asked = 0;

    async function inspect() {
      if (!upload) return;
      const mine = ++asked;
      let read;
      try {
        read = await api("POST", `/v1/uploads/${upload.upload_id}/inspect`, {...options(), sample: 20});
      } catch (e) {
        read = {ok: false, refusal: {code: e.code, message: e.message}};
      }
      if (mine === asked) showRead(read);
    }

    function showRead(read) {
      const refusal = document.getElementById("refusal");
      const go = document.getElementById("step-go");
      const facts = document.getElementById("read-facts");
      refusal.hidden = read.ok;
      go.hidden = !read.ok;
      if (!read.ok) {
        // the header's columns, when it has one: a mapping below may settle the refusal
        refusal.replaceChildren(el("strong", {text: `The file is refused (${read.refusal.code}): `}),
          read.refusal.message, ...((read.columns || []).length ? [el("br"),
            "Map or skip its columns below (Map to), or change the options: it is read again at each change."] : []));
        facts.replaceChildren();
        document.getElementById("read-warnings").replaceChildren();
        columns(read.columns || []);
        sample([], []);
        return;
      }
      // a file of Segment messages: no dry run yet (the API refuses it), no columns to map
      const segment = read.dialect === "segment";
      document.getElementById("dry-run").disabled = segment;
      document.getElementById("go-note").textContent = segment ?
        "A file of Segment messages has no dry run yet: import it into a test Redis first if in doubt." : "";
      facts.replaceChildren();
      for (const [label, value] of [["Encoding", read.encoding], ["Delimiter", JSON.stringify(read.delimiter)],
        ["Dialect", read.dialect], ["Identifier", read.identifier], ["Rows", n(read.rows)]]) {
        facts.append(el("dt", {text: label}), el("dd", {text: value === undefined || value === null ? "—" : String(value)}));
      }
      document.getElementById("read-warnings").replaceChildren(
        ...(read.warnings || []).map((w) => el("li", {text: typeof w === "string" ? w : (w.message || JSON.stringify(w))})));
      columns(read.columns || []);
      sample(read.columns || [], read.sample || []);
    }

    // What a column may be mapped to: the roles of the file's type, or any other name (a property's,
    // a person's attribute's).
    const ROLES = {events: ["email", "id", "event_name", "time", "event_id"], people: ["email", "id", "created_at"]};

    let drawn = null;

    function columns(list) {
      const body = document.querySelector("#columns tbody");
      const roles = ROLES[optionsForm.elements.type.value] || ROLES.events;
      const shape = JSON.stringify([roles, list.map((col) => col.name)]);
      if (shape === drawn) {
        // the same columns read again: their roles updated in place (focus stays where it is)
        list.forEach((col, index) => {
          const cells = body.rows[index].cells;
          cells[1].textContent = col.role || "";
          cells[2].firstChild.textContent = (col.first_values || []).join(" · ");
        });
        return;
      }
      drawn = shape;
      body.replaceChildren(...list.map((col, index) => {
        const name = col.name;
        const id = "map-" + index;
        const select = el("select", {id, "data-column": name},
          el("option", {value: "", text: "as read"}), el("option", {value: "__skip", text: "skip this column"}),
          ...roles.map((role) => el("option", {value: role, text: role})),
          el("option", {value: "__other", text: "another name…"}));
        const other = el("input", {id: id + "-name", "aria-label": "New name for " + name, placeholder: "a name"});
        const chosen = mapping[name];
        select.value = skip.has(name) ? "__skip" : (!chosen ? "" : roles.includes(chosen) ? chosen : "__other");
        other.value = select.value === "__other" ? chosen : "";
        other.hidden = select.value !== "__other";
        const apply = () => {
          delete mapping[name];
          skip.delete(name);
          other.hidden = select.value !== "__other";
          if (select.value === "__skip") skip.add(name);
          else if (select.value === "__other") { if (other.value.trim()) mapping[name] = other.value.trim(); }
          else if (select.value) mapping[name] = select.value;
          later();
        };
        select.addEventListener("change", apply);
        other.addEventListener("input", apply);
        return el("tr", {},
          el("th", {scope: "row", text: name}),
          el("td", {text: col.role || ""}),
          el("td", {}, el("small", {text: (col.first_values || []).join(" · ")})),
          el("td", {}, el("label", {for: id, class: "visually-hidden", text: "Map " + name + " to"}), select, other));
      }));
    }

    function sample(cols, rows) {
      const table = document.getElementById("sample");
      const head = el("tr", {}, el("th", {scope: "col", text: "Row"}), ...cols.map((c) => el("th", {scope: "col", text: c.name})));
      table.tHead.replaceChildren(head);
      const out = [];
      for (const item of rows) {
        const bad = new Set((item.problems || []).map((p) => p.column).filter((c) => c !== null && c !== undefined));
        const badNames = new Set((item.problems || []).map((p) => p.name).filter(Boolean));
        const cells = (item.cells || []).map((cell, index) => {
          const wrong = Boolean(cols[index]) && (bad.has(cols[index].column) || badNames.has(cols[index].name));
          return el("td", {class: wrong ? "bad-cell" : null, "aria-invalid": wrong ? "true" : null, text: cell});
        });
        out.push(el("tr", {class: "outcome-" + (item.outcome || "ok")}, el("th", {scope: "row", text: String(item.row)}), ...cells));
        if ((item.problems || []).length) {
          out.push(el("tr", {class: "problems"}, el("td", {colspan: String(cols.length + 1)},
            ...item.problems.map((p) => el("div", {class: p.level === "error" ? "error" : "warning",
              text: `${p.level} ${p.code}${p.name ? " (" + p.name + ")" : ""}: ${p.message}`})))));
        }
      }
      table.tBodies[0].replaceChildren(...out);
    }

    // one start at a time: a double click (or Enter held) would otherwise start the import twice
    let starting = false;

    async function start(dry) {
      if (starting) return;
      starting = true;
      const buttons = [document.getElementById("dry-run"), document.getElementById("start-import")];
      const enabled = buttons.map((button) => !button.disabled);
      for (const button of buttons) button.disabled = true;
      let leaving = false;
      try {
        leaving = await run(dry);
      } finally {
        starting = leaving;
        if (!leaving) buttons.forEach((button, index) => { button.disabled = !enabled[index]; });
      }
    }

    // a dry run followed to its end, or an import started (then its page: true)
    async function run(dry) {
      const status = document.getElementById("go-status");
      status.textContent = dry ? "Dry run started…" : "Import starting…";
      let accepted;
      try {
        accepted = await api("POST", "/v1/imports", {upload_id: upload.upload_id, ...options(), dry_run: dry});
      } catch (e) {
        status.textContent = `Refused (${e.code}): ${e.message}`;
        return false;
      }
      if (!dry) {
        window.location.assign("/imports/" + accepted.import_id);
        return true;
      }
      let item;
      let report;
      try {
        do {
          await new Promise((resolve) => setTimeout(resolve, 400));
          item = await api("GET", "/v1/imports/" + accepted.import_id);
          status.textContent = `Dry run: ${n(item.rows)}/${n(item.rows_expected)} rows…`;
        } while (!FINAL.includes(item.status));
        report = await api("GET", `/v1/imports/${accepted.import_id}/report`);
      } catch (e) {
        status.replaceChildren(`Could not follow the dry run (${e.code}): ${e.message} `,
          el("a", {href: "/imports/" + accepted.import_id, text: "Its page"}));
        return false;
      }
      status.replaceChildren(`Dry run ${report.status}: nothing was written. `,
        el("a", {href: "/imports/" + accepted.import_id, text: "Its full report"}));
      const rows = [["Rows", report.rows], ["Would import", report.imported], ["Duplicates", report.duplicates],
        ["Errors", report.errors], ["Warnings", report.warnings], ["People created", report.people_created]];
      document.querySelector("#preview-table tbody").replaceChildren(
        ...rows.map(([label, value]) => el("tr", {}, el("th", {scope: "row", text: label}), el("td", {class: "num", text: n(value)}))));
      const triggers = Object.entries(report.triggers || {}).filter(([, count]) => count);
      document.querySelector("#preview-triggers tbody").replaceChildren(
        ...(triggers.length ? triggers.map(([kind, count]) => el("tr", {"data-kind": kind},
          el("th", {scope: "row", text: TRIGGERS[kind] || kind}), el("td", {class: "num", text: n(count)})))
          : [el("tr", {}, el("td", {text: "No trigger decision."}))]));
      // Per campaign: what its events would do (an event outside the window or in the future counts for
      // each campaign on its name).
      const campaigns = Object.entries(report.triggers_by_campaign || {});
      const kinds = CAMPAIGN_KINDS.filter((kind) => campaigns.some(([, counts]) => counts[kind]));
      document.querySelector("#preview-campaigns thead").replaceChildren(...(campaigns.length ? [el("tr", {},
        el("th", {scope: "col", text: "Campaign"}),
        ...kinds.map((kind) => el("th", {scope: "col", class: "num", text: TRIGGERS[kind] || kind})))] : []));
      document.querySelector("#preview-campaigns tbody").replaceChildren(
        ...(campaigns.length ? campaigns.map(([name, counts]) => el("tr", {"data-campaign": name},
          el("th", {scope: "row", text: name}),
          ...kinds.map((kind) => el("td", {class: "num", "data-kind": kind, text: n(counts[kind] || 0)}))))
          : [el("tr", {}, el("td", {text: "No campaign decision."}))]));
      document.getElementById("preview").hidden = false;
      return false;
    }

    input.addEventListener("change", () => { if (input.files[0]) send(input.files[0]); });
    window.addEventListener("pagehide", () => forget(upload));
    for (const kind of ["dragenter", "dragover"]) {
      drop.addEventListener(kind, (event) => { event.preventDefault(); drop.classList.add("over"); });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      if (event.dataTransfer.files[0]) send(event.dataTransfer.files[0]);
    });
    optionsForm.addEventListener("submit", (event) => event.preventDefault());
    optionsForm.addEventListener("input", later);
    optionsForm.addEventListener("change", later);
    document.getElementById("dry-run").addEventListener("click", () => start(true));
    document.getElementById("start-import").addEventListener("click", () => start(false));
  }

  document.addEventListener("DOMContentLoaded", () => {
    importsList();
    importPage();
    actions();
    wizard();
  });
})();
