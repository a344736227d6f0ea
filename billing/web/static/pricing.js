// Live pricing. The page's state is its query string (?<product>=<quantity>&cap.<product>=<amount>),
// priced and written out by the server (billing/web/pages.py). As the visitor types or drags,
// this file only writes the inputs into the address (history.replaceState), asks the server
// for the page at that address, and swaps in the parts marked data-live. No arithmetic and no
// wording lives here, so the page with and without JavaScript, and a shared link, say the same.
(function () {
  "use strict";
  const form = document.getElementById("calculator");
  if (!form) return;
  const products = Array.from(document.querySelectorAll(".product"));
  const share = document.getElementById("share-link");
  const copy = document.getElementById("copy-link");
  const copyStatus = document.getElementById("copy-status");
  const offline = document.getElementById("offline");
  const main = document.querySelector("main");
  let sequence = 0;
  let timer = null;

  // The same cleaning as the server's clean_number: commas, underscores and spaces go.
  const clean = (text) => text.replace(/[,_\s]/g, "");

  // The slider is logarithmic: position 0..1000 maps to 0..max units (display only).
  function sliderToQuantity(section, position) {
    const max = Number(section.dataset.max) * 4 || 1e6;
    const pos = position / 1000;
    return pos === 0 ? 0 : Math.round(Math.pow(max + 1, pos) - 1);
  }
  function quantityToSlider(section, text) {
    const max = Number(section.dataset.max) * 4 || 1e6;
    const q = Number(text);
    if (!isFinite(q) || q <= 0) return 0;
    return Math.min(1000, Math.round((Math.log(q + 1) / Math.log(max + 1)) * 1000));
  }

  // The query string of the form as the server writes it (PricingForm.query): every
  // quantity, an empty one too, then every cap that is set.
  function query() {
    const params = new URLSearchParams();
    for (const section of products) {
      const input = section.querySelector(".qty");
      params.append(input.name, clean(input.value));
    }
    for (const section of products) {
      const input = section.querySelector(".cap");
      const cap = clean(input.value);
      if (cap !== "") params.append(input.name, cap);
    }
    return params.toString();
  }

  function remember() {
    const address = "/pricing?" + query();
    history.replaceState(null, "", address);
    // "Copied." stays true until the quote's address changes (a reprice of the same
    // inputs, finishing after the click, must not erase it).
    if (share.getAttribute("href") !== address) copyStatus.textContent = "";
    share.href = address;
    return address;
  }

  function swap(html) {
    const next = new DOMParser().parseFromString(html, "text/html");
    for (const fresh of next.querySelectorAll("[data-live]")) {
      const current = document.getElementById(fresh.id);
      if (!current) continue;
      current.className = fresh.className;
      current.replaceChildren(...Array.from(fresh.childNodes, (n) => document.importNode(n, true)));
    }
    for (const input of form.querySelectorAll(".qty, .cap")) {
      const fresh = next.getElementById(input.id);
      if (fresh && fresh.hasAttribute("aria-invalid")) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }

  async function reprice() {
    const mine = ++sequence;
    const address = remember();
    let html;
    try {
      const response = await fetch(address, { headers: { Accept: "text/html" } });
      if (response.status === 429) {
        // Over the address's quote budget: say so, and try again when the server says.
        const wait = Math.max(1, Number(response.headers.get("Retry-After")) || 1);
        if (mine !== sequence) return;
        offline.textContent = "Too many quotes from your address: the figures update again " +
          "in " + wait + " s.";
        clearTimeout(timer);
        timer = setTimeout(reprice, wait * 1000);
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      html = await response.text();
    } catch (e) {
      if (mine !== sequence) return;
      busy(false);
      offline.textContent = "Could not reach the pricing service: the figures shown are for " +
        "the previous inputs. They update once it answers again.";
      return;
    }
    if (mine !== sequence) return; // a newer edit is on its way
    offline.textContent = "";
    swap(html);
    busy(false);
  }

  // While inputs wait to be priced, the figures are stale: say so to assistive technology.
  function busy(on) {
    if (on) main.setAttribute("aria-busy", "true");
    else main.removeAttribute("aria-busy");
  }

  function schedule() {
    busy(true);
    remember();
    clearTimeout(timer);
    timer = setTimeout(reprice, 150);
  }

  for (const section of products) {
    const qty = section.querySelector(".qty");
    const slider = section.querySelector(".slider");
    slider.hidden = false;
    slider.value = quantityToSlider(section, clean(qty.value));
    qty.addEventListener("input", () => {
      slider.value = quantityToSlider(section, clean(qty.value));
      schedule();
    });
    slider.addEventListener("input", () => {
      qty.value = String(sliderToQuantity(section, Number(slider.value)));
      schedule();
    });
    section.querySelector(".cap").addEventListener("input", schedule);
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    busy(true);
    reprice();
  });

  copy.hidden = false;
  copy.addEventListener("click", async () => {
    const link = new URL(remember(), location.href).href;
    try {
      await navigator.clipboard.writeText(link);
      copyStatus.textContent = "Copied.";
    } catch (e) {
      copyStatus.textContent = "Copy this address: " + link;
    }
  });
})();
