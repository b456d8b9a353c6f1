import embed from "vega-embed";
import { expressionInterpreter } from "vega-interpreter";
import { reportError } from "./common.js";
import { coalesce, follow, refreshParts, updatedNow } from "./live.js";

const pageError = document.getElementById("dashboard-error");
const live = document.getElementById("live");

// The strict CSP allows no eval and no inline style: Vega's expressions run in its
// interpreter, and neither vega-embed nor its tooltips add a <style> (console.css has theirs).
const OPTIONS = {
  renderer: "svg",
  actions: false,
  ast: true,
  expr: expressionInterpreter,
  defaultStyle: false,
  tooltip: { disableDefaultStyle: true },
};

// Vega names each mark but not every group of marks (an empty chart's, say): such a group
// is named by its role description, so that a screen reader has something to say.
// Vega draws again on resize, so the names are given again after each drawing.
function nameUnnamedGraphics(root) {
  const name = () => {
    for (const node of root.querySelectorAll("[role^='graphics'], [role='img']")) {
      if (!(node.getAttribute("aria-label") || "").trim()) {
        node.setAttribute("aria-label", node.getAttribute("aria-roledescription") || "chart");
      }
    }
  };
  name();
  new MutationObserver(name).observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ["aria-label"] });
}

// The server rendered every chart's spec with this viewer's data into the page
// (#dashboard-data): vega-embed draws each as SVG, with no request of its own.
function chartData() {
  return JSON.parse(document.getElementById("dashboard-data").textContent);
}

async function draw(figure, chart) {
  if (!chart || !chart.spec) return;
  const target = figure.querySelector(".vega");
  await embed(target, chart.spec, OPTIONS);
  if (!target.dataset.named) {
    nameUnnamedGraphics(target);
    target.dataset.named = "true";
  }
  const rows = Object.fromEntries(Object.entries(chart.spec.datasets || {}).map(([name, values]) => [name, values.length]));
  figure.dataset.rows = JSON.stringify(rows);
  figure.dataset.drawn = "true";
}

async function drawAll() {
  const data = chartData();
  const figures = [...document.querySelectorAll("figure[data-chart]")];
  const results = await Promise.allSettled(figures.map((figure) => draw(figure, data[figure.dataset.chart])));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) reportError(pageError, failed.reason);
}

// New data for the period chosen, or after new usage: the page again, in one request.
// Figures are swapped only when the set of charts changed, so a redraw does not flicker.
// The period form is swapped only after it was sent (to show the server's verdict on it):
// a live refresh must not take the keyboard focus away from it.
async function refresh(url = window.location.href, { form = false } = {}) {
  const keys = () => [...document.querySelectorAll("figure[data-chart]")].map((f) => f.dataset.chart).join();
  const before = keys();
  const parts = ["#dashboard-data", "#budgets-table tbody", "#dashboard-error", ...(form ? ["#filters"] : [])];
  const fresh = await refreshParts(parts, url);
  const after = [...fresh.querySelectorAll("figure[data-chart]")].map((f) => f.dataset.chart).join();
  if (after !== before) await refreshParts(["#charts", "#builtin"], url);
  wireFilters();
  await drawAll();
}

function wireFilters() {
  const form = document.getElementById("filters");
  if (form.dataset.wired) return;
  form.dataset.wired = "true";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = `${window.location.pathname}?${new URLSearchParams(new FormData(form))}`;
    window.history.replaceState(null, "", url);
    try {
      await refresh(url, { form: true });
    } catch (error) {
      reportError(pageError, error);
    }
  });
}

wireFilters();
drawAll();
const again = coalesce(async () => {
  try {
    await refresh();
    updatedNow(live, "New usage: updated");
  } catch (error) {
    reportError(pageError, error);
  }
}, 500);
follow(["usage", "budgets"], again, { marker: live });
