// Progressive help for the portal's forms: live previews as you type. The forms work
// without this file (Preview / Review buttons ask the server); it only asks earlier.
// Every figure comes from the server, computed exactly; nothing is priced here.
"use strict";

function group(text) {
  if (text === null || text === undefined || text === "") return "—";
  const [whole, fraction] = String(text).split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return sign + digits + (fraction !== undefined ? "." + fraction : "");
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function paragraph(text, className) {
  const p = document.createElement("p");
  if (className) p.className = className;
  p.textContent = text;
  return p;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${response.status}`);
  return response.json();
}

function setupCaps() {
  document.querySelectorAll("form.cap-form").forEach((form) => {
    const product = form.querySelector("input[name=product]").value;
    const amount = form.querySelector("input[name=amount]");
    const preview = form.querySelector(".preview");
    let latest = 0;
    const update = debounce(async () => {
      const asked = ++latest;
      const url = `/portal/caps/preview?product=${encodeURIComponent(product)}&amount=${encodeURIComponent(amount.value)}`;
      try {
        const answer = await getJSON(url);
        if (asked !== latest) return;  // an older answer arriving late
        preview.replaceChildren();
        if (answer.error) {
          amount.setAttribute("aria-invalid", "true");
          preview.append(paragraph(answer.error, "error"));
          return;
        }
        amount.removeAttribute("aria-invalid");
        if (answer.q_max) {
          const p = document.createElement("p");
          const strong = document.createElement("strong");
          strong.className = "qmax";
          strong.textContent = group(answer.q_max);
          p.append("This cap buys ", strong, ` ${answer.unit}s a period.`);
          preview.append(p);
        }
        preview.append(paragraph(answer.effect, "effect"));
      } catch (error) {
        preview.replaceChildren(paragraph("Preview unavailable; use the Preview button.", "subtle"));
      }
    }, 200);
    amount.addEventListener("input", update);
  });
}

function setupDiscount() {
  const form = document.getElementById("commit-form");
  if (!form) return;
  const credit = form.querySelector("#credit");
  const years = form.querySelector("#years");
  const live = form.querySelector("#live");
  const confirm = form.querySelector("#confirm");
  const reviewedCredit = form.querySelector("input[name=reviewed_credit]");
  const reviewedYears = form.querySelector("input[name=reviewed_years]");
  let latest = 0;
  const update = debounce(async () => {
    if (confirm && reviewedCredit) {
      // Confirm only what was reviewed: a changed choice goes back through Review.
      const same = credit.value.trim() === reviewedCredit.value && years.value === reviewedYears.value;
      confirm.hidden = !same;
    }
    const asked = ++latest;
    const url = `/portal/discount/preview?credit=${encodeURIComponent(credit.value)}&years=${encodeURIComponent(years.value)}`;
    try {
      const q = await getJSON(url);
      if (asked !== latest) return;
      live.replaceChildren();
      if (q.error) {
        credit.setAttribute("aria-invalid", "true");
        live.append(paragraph(q.error, "error"));
        return;
      }
      credit.removeAttribute("aria-invalid");
      const p = document.createElement("p");
      const bracket = document.createElement("strong");
      bracket.id = "live-bracket";
      bracket.textContent = `${q.discount_percent} % off`;
      const price = document.createElement("strong");
      price.id = "live-price";
      price.textContent = `${group(q.price_per_year)} ${form.dataset.currency || ""}`.trim();
      const saving = document.createElement("strong");
      saving.id = "live-saving";
      if (q.loss) saving.className = "bad";
      saving.textContent = q.verdict;  // in words, from the server: "costs 867.56 USD more a year ..."
      p.append("Bracket: ", bracket, ` (from ${group(q.bracket.min_credit)}, ${q.years} yr). Price: `,
               price, " a year, invoiced at the start of each contract year. At your projected usage it ",
               saving, ".");
      live.append(p);
    } catch (error) {
      live.replaceChildren(paragraph("Live prices unavailable; use the Review button.", "subtle"));
    }
  }, 200);
  credit.addEventListener("input", update);
  years.addEventListener("change", update);
  if (!live.textContent.trim() && credit.value) update();
}

document.addEventListener("DOMContentLoaded", () => { setupCaps(); setupDiscount(); });
