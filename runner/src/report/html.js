// Opens a case's instances on one kernel under the grid. Everything shown comes from the JSON
// data block and is set as text, never parsed as HTML.
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const panel = document.getElementById("panel");
  const doc = (i) => D.d[i].map((l) => D.l[l]).join("\n");
  const VERDICT = [["pass", "v-pass"], ["fail", "v-fail"], ["no rule", "v-none"], ["not run", "v-none"]];
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function details(title, body) {
    const d = el("details");
    d.appendChild(el("summary", null, title));
    d.appendChild(el("pre", null, body));
    return d;
  }
  function show(c, k, button) {
    const cs = D.cases[c];
    panel.replaceChildren();
    const close = el("button", "close", "close");
    close.onclick = () => { panel.hidden = true; mark(null); history.replaceState(null, "", " "); };
    panel.appendChild(close);
    panel.appendChild(el("h3", null, cs.n + " on " + D.k[k]));
    panel.appendChild(el("p", "quiet", cs.a));
    const only = el("label", "quiet");
    const box = el("input");
    box.type = "checkbox";
    only.append(box, " only instances that fail or changed since " + (k > 0 ? D.k[k - 1] : "the kernel before"));
    panel.appendChild(only);
    const t = el("table");
    const head = el("tr");
    ["instance", "outcome", "verdict"].forEach((h) => head.appendChild(el("th", null, h)));
    t.appendChild(head);
    for (const r of cs.r) {
      const row = D.rows[r];
      const o = row.o[k];
      const before = k > 0 ? row.o[k - 1] : null;
      const changed = o && before && o[0] !== before[0];
      const tr = el("tr", "row" + (o && o[1] === 1 ? " fail" : "") + (changed ? " changed" : ""));
      const id = el("td", "id", row.id);
      tr.appendChild(id);
      const out = el("td");
      const extra = el("div", "progs");
      if (o) {
        out.appendChild(el("code", null, D.s[o[0]]));
        if (changed) out.appendChild(el("div", "was", "on " + D.k[k - 1] + ": " + D.s[before[0]]));
        for (const [prog, log] of o[3]) extra.appendChild(details("verifier log of " + prog, doc(log)));
      } else {
        out.appendChild(el("span", "quiet", "no observation"));
      }
      for (const [step, type, listing] of row.p) {
        extra.appendChild(details("program " + step + " (" + type + ")", doc(listing)));
      }
      out.appendChild(extra);
      tr.appendChild(out);
      const v = el("td");
      if (o) {
        const [word, cls] = VERDICT[o[1]];
        v.appendChild(el("div", cls, word));
        if (o[2] >= 0) v.appendChild(el("div", "v-fail", D.s[o[2]]));
      }
      tr.appendChild(v);
      t.appendChild(tr);
    }
    panel.appendChild(t);
    box.onchange = () => {
      t.querySelectorAll("tr.row").forEach((tr) => {
        tr.hidden = box.checked && !tr.classList.contains("fail") && !tr.classList.contains("changed");
      });
    };
    panel.hidden = false;
    mark(button);
    history.replaceState(null, "", "#cell-" + c + "-" + k);
  }
  function mark(button) {
    document.querySelectorAll("table.grid button.sel").forEach((b) => b.classList.remove("sel"));
    if (button) button.classList.add("sel");
  }
  document.querySelectorAll("table.grid button[data-c]").forEach((b) => {
    b.addEventListener("click", () => show(+b.dataset.c, +b.dataset.k, b));
  });
  const m = /^#cell-(\d+)-(\d+)$/.exec(location.hash);
  if (m) {
    const b = document.querySelector('button[data-c="' + m[1] + '"][data-k="' + m[2] + '"]');
    if (b) show(+m[1], +m[2], b);
  }
})();
