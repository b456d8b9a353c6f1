import embed from "vega-embed";
import { expressionInterpreter } from "vega-interpreter";
import { api, el, listAll, money, reportError } from "./common.js";

const charts = document.getElementById("charts");
const budgets = document.querySelector("#budgets-table tbody");
const pageError = document.getElementById("dashboard-error");

// The strict CSP allows no eval: Vega's expressions run in its interpreter instead, and
// vega-embed adds no <style> of its own (console.css styles the charts).
const OPTIONS = { renderer: "svg", actions: false, ast: true, expr: expressionInterpreter, defaultStyle: false };

async function draw(visualization) {
  const figure = el("figure", { class: "card chart", "data-visualization": visualization.id });
  const target = el("div", { class: "vega" });
  figure.append(el("figcaption", { text: visualization.name }), target);
  charts.append(figure);
  try {
    const rendered = await api.get(`/api/v1/visualizations/${visualization.id}/render`);
    const spec = rendered.spec || rendered;
    const result = await embed(target, spec, OPTIONS);
    figure.dataset.drawn = "true";
    return result;
  } catch (error) {
    figure.append(el("p", { class: "form-error", role: "alert", text: error.message }));
    return null;
  }
}

async function loadCharts() {
  const visualizations = await listAll("/api/v1/visualizations");
  if (!visualizations.length) {
    charts.append(el("p", { text: "No charts yet: save one from a template in the visualizations API." }));
  }
  await Promise.all(visualizations.slice(0, 12).map(draw));
}

async function loadBudgets() {
  const rows = await listAll("/api/v1/providers/budgets");
  const today = new Date().toISOString().slice(0, 10);
  const monthStart = `${today.slice(0, 8)}01`;
  budgets.replaceChildren(
    ...(await Promise.all(
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
    )),
  );
  if (!rows.length) budgets.append(el("tr", {}, el("td", { colspan: 5, text: "No budgets apply to you." })));
}

Promise.all([loadCharts(), loadBudgets()]).catch((error) => reportError(pageError, error));
