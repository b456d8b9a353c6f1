import embed from "vega-embed";
import { expressionInterpreter } from "vega-interpreter";
import { api, clearErrors, el, listAll, money, reportError, showErrors } from "./common.js";

const filters = document.getElementById("filters");
const saved = document.getElementById("charts");
const builtin = document.getElementById("builtin");
const budgets = document.querySelector("#budgets-table tbody");
const pageError = document.getElementById("dashboard-error");

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

// A chart: the visualizations API answers the spec with its data already filled in for
// this viewer; vega-embed draws it as SVG.
async function draw(parent, { key, name, url }, query) {
  const figure = el("figure", { class: "card chart", "data-chart": key });
  const target = el("div", { class: "vega" });
  figure.append(el("figcaption", { text: name }), target);
  parent.append(figure);
  const rendered = await api.get(`${url}?${query}`);
  await embed(target, rendered.spec, OPTIONS);
  nameUnnamedGraphics(target);
  figure.dataset.rows = JSON.stringify(rendered.rows);
  figure.dataset.drawn = "true";
}

async function loadCharts(query) {
  const [mine, templates] = await Promise.all([
    listAll("/api/v1/visualizations"),
    api.get("/api/v1/visualizations/templates"),
  ]);
  saved.replaceChildren();
  builtin.replaceChildren();
  if (!mine.length) saved.append(el("p", { text: "No saved charts yet: the built-in ones below can be copied through the visualizations API." }));
  const charts = [
    ...mine.slice(0, 12).map((v) => [saved, { key: v.id, name: v.name, url: `/api/v1/visualizations/${v.id}/render` }]),
    ...(Array.isArray(templates) ? templates : templates.results || []).map((t) => [
      builtin,
      { key: t.key, name: t.name, url: `/api/v1/visualizations/templates/${t.key}/render` },
    ]),
  ];
  const results = await Promise.allSettled(charts.map(([parent, chart]) => draw(parent, chart, query)));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

async function loadBudgets() {
  const rows = await listAll("/api/v1/providers/budgets");
  const today = new Date().toISOString().slice(0, 10);
  const monthStart = `${today.slice(0, 8)}01`;
  const cells = await Promise.all(
    rows.map(async (budget) => {
      let spent = "—";
      try {
        const since = budget.period === "day" ? today : monthStart;
        const key = budget.scope === "token" ? "token" : "user";
        const report = await api.get(`/api/v1/providers/costs?since=${since}&group_by=${key}&${key}=${budget.subject_id}`);
        const total = (report.rows || []).reduce((sum, row) => sum + Number(row.cost), 0);
        const share = budget.limit_usd ? ` (${Math.round((100 * total) / Number(budget.limit_usd))}%)` : "";
        spent = `${money(total)}${share}`;
      } catch {
        spent = "—";
      }
      return el(
        "tr",
        {},
        el("th", { scope: "row", text: budget.name || budget.id.slice(0, 8) }),
        el("td", { text: budget.scope }),
        el("td", { text: budget.period }),
        el("td", { text: budget.limit_usd === null ? "no limit" : money(budget.limit_usd) }),
        el("td", { text: spent }),
      );
    }),
  );
  budgets.replaceChildren(...cells);
  if (!rows.length) budgets.append(el("tr", {}, el("td", { colspan: 5, text: "No budgets apply to you." })));
}

async function refresh() {
  clearErrors(filters);
  const query = new URLSearchParams({ days: new FormData(filters).get("days") }).toString();
  try {
    await loadCharts(query);
  } catch (error) {
    showErrors(filters, error);
  }
}

filters.addEventListener("submit", (event) => {
  event.preventDefault();
  refresh();
});

refresh();
loadBudgets().catch((error) => reportError(pageError, error));
