import { api, el, formatDate, listAll, reportError } from "./common.js";
import { coalesce, follow, updatedNow } from "./live.js";

const root = document.getElementById("providers");
const pageError = document.getElementById("providers-error");
const live = document.getElementById("live");

function price(value) {
  return value === null || value === undefined ? "—" : `$${Number(value)}`;
}

// Where each model stands for routing right now: ranked, or left out and why (an open
// circuit shows here), from the selection endpoint's answer for lumina/auto.
async function routing() {
  try {
    const answer = await api.post("/api/v1/providers/select", { model: "lumina/auto" });
    const state = new Map();
    for (const c of answer.candidates || []) state.set(c.deployment_id, `available (rank ${c.rank}): ${c.reason}`);
    for (const r of answer.rejected || answer.rejections || []) state.set(r.deployment_id, `left out: ${r.reason}`);
    return state;
  } catch {
    return new Map();
  }
}

function modelRow(model, state) {
  const probe = (model.verified || [])
    .map((v) => `${v.capability}: ${v.ok ? "ok" : `failed (${v.error})`}${v.latency_ms !== null ? `, ${Math.round(v.latency_ms)} ms` : ""}`)
    .join("; ");
  const checked = (model.verified || []).map((v) => v.checked_at).filter(Boolean).sort().pop();
  return el(
    "tr",
    {},
    el("th", { scope: "row", text: model.name }),
    el("td", { text: model.enabled ? state.get(model.id) || "enabled" : "disabled" }),
    el("td", { text: model.capabilities ? model.capabilities.join(", ") : "" }),
    el("td", { text: probe ? `${probe} (${formatDate(checked)})` : "not probed" }),
    el("td", { text: `${price(model.input_price)} in / ${price(model.output_price)} out per 1M` }),
  );
}

async function load() {
  try {
    const [providers, state] = await Promise.all([listAll("/api/v1/providers"), routing()]);
    const cards = await Promise.all(
      providers.map(async (provider) => {
        const models = await listAll(`/api/v1/providers/${provider.id}/models`);
        return el(
          "article",
          { class: "card", "aria-labelledby": `p-${provider.id}` },
          el("h2", { id: `p-${provider.id}`, text: provider.name }),
          el("p", { text: `${provider.kind} · ${provider.enabled ? "enabled" : "disabled"} · priority ${provider.priority} · ${provider.base_url}` }),
          el(
            "div",
            { class: "table-wrap", tabindex: 0, role: "region", "aria-labelledby": `p-${provider.id}` },
            el(
              "table",
              {},
              el("thead", {}, el("tr", {}, ["Model", "Routing / circuit", "Capabilities", "Latest probe", "Prices"].map((h) => el("th", { scope: "col", text: h })))),
              el("tbody", {}, models.map((m) => modelRow(m, state))),
            ),
          ),
        );
      }),
    );
    root.replaceChildren(...cards);
    if (!cards.length) root.append(el("p", { text: "No providers are configured." }));
  } catch (error) {
    reportError(pageError, error);
  }
}

load();
// A circuit opening or closing changes where each model stands for routing.
follow(
  ["circuits"],
  coalesce(async () => {
    await load();
    updatedNow(live, "A circuit changed: updated");
  }, 300),
  { marker: live },
);
