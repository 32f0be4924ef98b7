// The anyner page: posts the text and labels to v1/entities and shows the answer.
// The highlighted text and the table are HTML built and escaped by the server
// (anyner.render); everything else is inserted as text. With a model that extracts
// relations (v1/model says relations: true), the page also asks for the relations
// named, draws each as a labelled arrow from its head entity to its tail entity (an
// SVG laid over the highlighted text) and lists them under the text. With a model that
// has calibrated thresholds (v1/model says calibrated: true), a "calibrated" box sends
// "threshold": "auto" instead of the slider's number.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const slider = $("threshold");
  const number = $("threshold-value");
  const arrows = $("arrows");
  const SVG = arrows.namespaceURI; // the SVG namespace, from the page's own <svg>
  let shown = null; // the last answer with relations, redrawn when the layout changes
  slider.addEventListener("input", () => { number.value = slider.value; });
  number.addEventListener("input", () => { slider.value = number.value; });
  $("auto").addEventListener("change", () => {
    slider.disabled = number.disabled = $("auto").checked;
  });

  function names(id) {
    return $(id).value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  }

  function message(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => (d.loc ? d.loc.join(".") + ": " : "") + d.msg).join("\n");
    }
    return JSON.stringify(detail);
  }

  function show(error, status) {
    $("error").textContent = error;
    $("status").textContent = status;
  }

  // An optional threshold field: null when empty, NaN when not a number in [0, 1].
  function optionalThreshold(id) {
    const raw = $(id).value.trim();
    if (raw === "") return null;
    const value = Number(raw);
    return value >= 0 && value <= 1 ? value : NaN;
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  // ------------------------------------------------------------------ relations

  function clearRelations() {
    shown = null;
    arrows.querySelectorAll(".relation-arrow, .relation-name").forEach((el) => el.remove());
    $("view").classList.remove("with-relations");
    $("relation-results").textContent = "";
  }

  // The character range [start, end) of each mark in the highlighted text: its text nodes
  // counted in order, a <br> as the newline it stands for, the label tags left out.
  function markRanges(root) {
    const ranges = [];
    let at = 0;
    (function walk(node) {
      for (const child of node.childNodes) {
        if (child.nodeType === Node.TEXT_NODE) {
          at += child.nodeValue.length;
        } else if (child.nodeType === Node.ELEMENT_NODE) {
          if (child.classList.contains("entity-label")) continue;
          if (child.tagName === "BR") { at += 1; continue; }
          const start = at;
          walk(child);
          if (child.tagName === "MARK") ranges.push({ mark: child, start: start, end: at });
        }
      }
    })(root);
    return ranges;
  }

  // The box where arrows meet an entity: the first box of its first mark (the marks of its
  // label inside its span), in the coordinates of #view; null when it is not shown.
  function entityBoxes(entities, origin) {
    const root = document.querySelector("#result .entities");
    const ranges = root ? markRanges(root) : [];
    return entities.map((e) => {
      const marks = ranges.filter((r) => r.mark.dataset.label === e.label && r.start >= e.start && r.end <= e.end);
      if (marks.length === 0) return null;
      marks.sort((a, b) => a.start - b.start || b.end - a.end);
      const box = marks[0].mark.getClientRects()[0] || marks[0].mark.getBoundingClientRect();
      return { left: box.left - origin.left, width: box.width, top: box.top - origin.top };
    });
  }

  // Where each relation leaves its head and lands on its tail: the arrows that meet one entity
  // are spread along the top of its box, ordered by where their other end lies.
  function endpoints(relations, boxes) {
    const meeting = new Map(); // entity index -> [{at: relation index, end: "head" or "tail", other: x}]
    const centre = (box) => box.left + box.width / 2;
    const meet = (index, at, end, other) => {
      if (!meeting.has(index)) meeting.set(index, []);
      meeting.get(index).push({ at: at, end: end, other: other });
    };
    relations.forEach((r, i) => {
      const head = boxes[r.head.entity_idx];
      const tail = boxes[r.tail.entity_idx];
      if (!head || !tail) return;
      meet(r.head.entity_idx, i, "head", centre(tail));
      meet(r.tail.entity_idx, i, "tail", centre(head));
    });
    const points = relations.map(() => ({}));
    for (const [index, ends] of meeting) {
      const box = boxes[index];
      ends.sort((p, q) => p.other - q.other || p.at - q.at);
      ends.forEach((p, k) => {
        points[p.at][p.end] = { x: box.left + ((k + 1) * box.width) / (ends.length + 1), y: box.top };
      });
    }
    return points;
  }

  function svg(tag, attributes) {
    const el = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
    return el;
  }

  // Each relation as a curve rising from the head entity and landing, with an arrow head, on
  // the tail entity; its name halfway. Relations between the same two entities rise higher.
  function drawArrows(data) {
    arrows.querySelectorAll(".relation-arrow, .relation-name").forEach((el) => el.remove());
    const boxes = entityBoxes(data.entities, $("view").getBoundingClientRect());
    const points = endpoints(data.relations, boxes);
    const seen = new Map();
    data.relations.forEach((r, i) => {
      const a = points[i].head;
      const b = points[i].tail;
      if (!a || !b) return;
      const pair = Math.min(r.head.entity_idx, r.tail.entity_idx) + "," + Math.max(r.head.entity_idx, r.tail.entity_idx);
      const repeat = seen.get(pair) || 0;
      seen.set(pair, repeat + 1);
      const lift = Math.min(34, 14 + Math.abs(b.x - a.x) / 10) + 12 * repeat;
      const d = "M " + a.x + " " + a.y + " C " + a.x + " " + (a.y - lift) + ", " + b.x + " " + (b.y - lift) +
        ", " + b.x + " " + b.y;
      const path = svg("path", { d: d, class: "relation-arrow", "marker-end": "url(#arrowhead)", "data-index": i });
      const title = svg("title", {});
      title.textContent = r.head.text + " \u2192 " + r.relation + " \u2192 " + r.tail.text + " " + r.score.toFixed(2);
      path.appendChild(title);
      const name = svg("text", {
        x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 0.75 * lift - 3, "text-anchor": "middle", class: "relation-name",
      });
      name.textContent = r.relation;
      arrows.append(path, name);
    });
  }

  // The relations as a list of text, for screen readers and for copying.
  function listRelations(data) {
    const box = $("relation-results");
    box.textContent = "";
    const heading = document.createElement("h2");
    heading.textContent = "Relations";
    box.appendChild(heading);
    if (data.relations.length === 0) {
      const none = document.createElement("p");
      none.textContent = "No relations found.";
      box.appendChild(none);
      return;
    }
    const list = document.createElement("ol");
    list.id = "relation-list";
    const colors = new Map();
    document.querySelectorAll("#result mark.entity").forEach((m) => colors.set(m.dataset.label, m.style.backgroundColor));
    const end = (e) => {
      const span = document.createElement("span");
      span.className = "relation-end";
      span.textContent = e.text + " (" + e.type + ")";
      if (colors.get(e.type)) span.style.backgroundColor = colors.get(e.type);
      return span;
    };
    for (const r of data.relations) {
      const item = document.createElement("li");
      item.append(end(r.head), " \u2192 " + r.relation + " \u2192 ", end(r.tail), " " + r.score.toFixed(2));
      list.appendChild(item);
    }
    box.appendChild(list);
  }

  function showRelations(data) {
    shown = data;
    $("view").classList.add("with-relations");
    drawArrows(data);
    listRelations(data);
  }

  window.addEventListener("resize", () => { if (shown) drawArrows(shown); });

  // ------------------------------------------------------------------ the form

  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const labels = names("labels");
    const auto = $("auto").checked; // the model's calibrated thresholds instead of one number
    const threshold = auto ? "auto" : Number(number.value);
    if (labels.length === 0) return show("Give at least one label, e.g. person, organization.", "");
    if (!auto && (number.value === "" || !(threshold >= 0 && threshold <= 1))) {
      return show("The threshold must be a number between 0 and 1.", "");
    }
    const body = {
      text: $("text").value,
      labels: labels,
      threshold: threshold,
      flat: !$("nested").checked,
      multi_label: $("multi-label").checked,
      html: true,
    };
    const relations = $("relations").disabled ? [] : names("relations");
    if (relations.length > 0) {
      body.relations = relations;
      for (const [id, key, what] of [["relation-threshold", "relation_threshold", "relation threshold"],
        ["adjacency-threshold", "adjacency_threshold", "adjacency threshold"]]) {
        const value = optionalThreshold(id);
        if (Number.isNaN(value)) return show("The " + what + " must be empty or a number between 0 and 1.", "");
        if (value !== null) body[key] = value;
      }
    }
    show("", "working...");
    $("submit").disabled = true;
    clearRelations();
    try {
      const response = await fetch("v1/entities", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const data = await response.json().catch(() => ({ detail: response.statusText }));
      if (!response.ok) throw new Error(response.status + ": " + message(data.detail));
      $("result").innerHTML = data.html;
      $("table").innerHTML = data.entities.length ? data.table : "";
      let status = plural(data.entities.length, "entity", "entities");
      if (Array.isArray(data.relations)) {
        showRelations(data);
        status += ", " + plural(data.relations.length, "relation", "relations");
      }
      show("", status);
    } catch (e) {
      $("result").textContent = "";
      $("table").textContent = "";
      show(e.message, "");
    } finally {
      $("submit").disabled = false;
    }
  });

  function relationsSupported(yes) {
    $("relation-fields").classList.toggle("unsupported", !yes);
    for (const id of ["relations", "relation-threshold", "adjacency-threshold"]) $(id).disabled = !yes;
    $("relations-note").textContent = yes
      ? "The model extracts relations between the entities: name some to see them as arrows."
      : "The model finds entities only: relations need a relation-extraction model.";
  }

  fetch("v1/model")
    .then((r) => (r.ok ? r.json() : null))
    .then((info) => {
      if (!info) return;
      $("model").textContent = "Model: " + info.name + ".";
      relationsSupported(info.relations === true);
      // a calibrated model (calibration.json) also takes "threshold": "auto"
      $("auto-field").hidden = info.calibrated !== true;
    })
    .catch(() => {});
})();
