// Live pricing: every edit re-prices through POST /v1/quote and redraws the answer.
// The server does all arithmetic; this file only collects inputs and shows results.
(function () {
  "use strict";
  const form = document.getElementById("calculator");
  if (!form) return;
  const products = Array.from(document.querySelectorAll(".product"));
  const discount = document.getElementById("discount");
  let sequence = 0;
  let timer = null;

  const clean = (text) => text.replace(/[,_\s]/g, "");
  // Display only: "1000000.5" -> "1,000,000.5", "inf" -> "∞". Strings in, strings out.
  const group = (text) => {
    if (text === "inf") return "∞";
    const [whole, fraction] = String(text).split(".");
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return fraction === undefined ? grouped : grouped + "." + fraction;
  };
  const cell = (text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  };

  // The slider is logarithmic: position 0..1000 maps to 0..max units.
  function sliderToQuantity(slider, section) {
    const max = Number(section.dataset.max) * 4 || 1e6;
    const pos = Number(slider.value) / 1000;
    return pos === 0 ? 0 : Math.round(Math.pow(max + 1, pos) - 1);
  }
  function quantityToSlider(quantity, section) {
    const max = Number(section.dataset.max) * 4 || 1e6;
    const q = Number(quantity);
    if (!isFinite(q) || q <= 0) return 0;
    return Math.min(1000, Math.round((Math.log(q + 1) / Math.log(max + 1)) * 1000));
  }

  function collect() {
    const usage = {};
    const caps = {};
    for (const section of products) {
      const key = section.dataset.product;
      const qty = clean(section.querySelector(".qty").value);
      if (qty !== "") usage[key] = qty;
      const cap = clean(section.querySelector(".cap").value);
      if (cap !== "") caps[key] = cap;
    }
    const body = { usage: usage, include_commitment_options: true };
    if (Object.keys(caps).length) body.spend_caps = caps;
    if (clean(discount.value) !== "") body.discount_percent = clean(discount.value);
    return body;
  }

  function showError(error) {
    for (const el of document.querySelectorAll(".error")) el.textContent = "";
    if (!error) return;
    const parts = (error.field || "").split(".");
    const key = parts.length > 1 ? parts[1] : null;
    const target = key && document.getElementById("err-" + key);
    (target || document.getElementById("form-error")).textContent = error.message;
  }

  function render(quote) {
    document.getElementById("total").textContent = group(quote.total);
    document.getElementById("total-detail").textContent =
      "list " + group(quote.subtotal) + ", discount " + group(quote.discount);
    for (const section of products) {
      section.querySelector(".line").textContent = "";
    }
    const tbody = document.querySelector("#breakdown tbody");
    tbody.textContent = "";
    for (const line of quote.lines) {
      const holder = document.getElementById("line-" + line.product);
      if (holder) {
        const p = document.createElement("p");
        p.className = "line-total";
        p.textContent = group(line.total) + " " + quote.currency;
        if (line.capped) {
          const note = document.createElement("span");
          note.className = "capped";
          note.textContent = " · capped at " + group(line.billable_quantity) + " " + line.unit + "s";
          p.appendChild(note);
        }
        holder.appendChild(p);
      }
      for (const t of line.tiers) {
        const tr = document.createElement("tr");
        tr.append(cell(line.name), cell(group(t.from) + " – " + group(t.up_to)),
          cell(group(t.quantity), "num"), cell(t.unit_price, "num"), cell(group(t.amount), "num"));
        tbody.appendChild(tr);
      }
    }
    const options = document.querySelector("#options tbody");
    if (options && quote.commitment_options) {
      options.textContent = "";
      for (const o of quote.commitment_options) {
        const tr = document.createElement("tr");
        if (o.recommended) tr.className = "recommended";
        tr.append(cell(o.years + " yr"), cell(group(o.bracket.min_credit), "num"),
          cell(o.discount_percent + "%", "num"), cell(group(o.credit), "num"),
          cell(group(o.price_per_year), "num"), cell(group(o.annual_cost_without_commitment), "num"),
          cell(group(o.annual_cost_with_commitment), "num"), cell(group(o.saving), "num"));
        options.appendChild(tr);
      }
    }
  }

  async function reprice() {
    const mine = ++sequence;
    let response;
    try {
      response = await fetch("/v1/quote", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(collect()),
      });
    } catch (e) {
      showError({ message: "Could not reach the pricing service." });
      return;
    }
    const data = await response.json();
    if (mine !== sequence) return; // a newer edit is on its way
    if (!response.ok) { showError(data); return; }
    showError(null);
    render(data);
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(reprice, 120);
  }

  for (const section of products) {
    const qty = section.querySelector(".qty");
    const slider = section.querySelector(".slider");
    slider.value = quantityToSlider(clean(qty.value), section);
    qty.addEventListener("input", () => {
      slider.value = quantityToSlider(clean(qty.value), section);
      schedule();
    });
    slider.addEventListener("input", () => {
      qty.value = String(sliderToQuantity(slider, section));
      schedule();
    });
    section.querySelector(".cap").addEventListener("input", schedule);
  }
  discount.addEventListener("input", schedule);
  form.addEventListener("submit", (event) => { event.preventDefault(); reprice(); });
  if (products.some((s) => clean(s.querySelector(".qty").value) !== "")) reprice();
})();
