// The anyner page: posts the text and labels to v1/entities and shows the answer.
// The highlighted text and the table are HTML built and escaped by the server
// (anyner.render); everything else is inserted as text.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const slider = $("threshold");
  const number = $("threshold-value");
  slider.addEventListener("input", () => { number.value = slider.value; });
  number.addEventListener("input", () => { slider.value = number.value; });

  function labels() {
    return $("labels").value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
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

  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const names = labels();
    const threshold = Number(number.value);
    if (names.length === 0) return show("Give at least one label, e.g. person, organization.", "");
    if (number.value === "" || !(threshold >= 0 && threshold <= 1)) {
      return show("The threshold must be a number between 0 and 1.", "");
    }
    show("", "working...");
    $("submit").disabled = true;
    try {
      const response = await fetch("v1/entities", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          text: $("text").value,
          labels: names,
          threshold: threshold,
          flat: !$("nested").checked,
          multi_label: $("multi-label").checked,
          html: true,
        }),
      });
      const data = await response.json().catch(() => ({ detail: response.statusText }));
      if (!response.ok) throw new Error(response.status + ": " + message(data.detail));
      $("result").innerHTML = data.html;
      $("table").innerHTML = data.entities.length ? data.table : "";
      const n = data.entities.length;
      show("", n + (n === 1 ? " entity" : " entities"));
    } catch (e) {
      $("result").textContent = "";
      $("table").textContent = "";
      show(e.message, "");
    } finally {
      $("submit").disabled = false;
    }
  });

  fetch("v1/model")
    .then((r) => (r.ok ? r.json() : null))
    .then((info) => { if (info) $("model").textContent = "Model: " + info.name + "."; })
    .catch(() => {});
})();
