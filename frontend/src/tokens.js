import { api, clearErrors, el, formatDate, listAll, money, reportError, showErrors } from "./common.js";

const form = document.getElementById("mint-form");
const minted = document.getElementById("minted");
const secret = document.getElementById("minted-secret");
const body = document.querySelector("#tokens-table tbody");
const listError = document.getElementById("tokens-error");

async function budgetsByToken() {
  try {
    const budgets = await listAll("/api/v1/providers/budgets?scope=token");
    const map = new Map();
    for (const budget of budgets) {
      const list = map.get(budget.subject_id) || [];
      list.push(budget);
      map.set(budget.subject_id, list);
    }
    return map;
  } catch {
    return new Map(); // budgets are optional reading: the list still shows
  }
}

function describeBudget(budget) {
  const parts = [];
  if (budget.limit_usd !== null) parts.push(`${money(budget.limit_usd)}/${budget.period}`);
  if (budget.requests_per_minute) parts.push(`${budget.requests_per_minute} req/min`);
  if (budget.tokens_per_minute) parts.push(`${budget.tokens_per_minute} tok/min`);
  return `${budget.name || "budget"}: ${parts.join(", ") || "no limit"}`;
}

async function load() {
  listError.textContent = "";
  try {
    const [tokens, budgets] = await Promise.all([listAll("/api/v1/auth/tokens"), budgetsByToken()]);
    body.replaceChildren(
      ...tokens.map((token) =>
        el(
          "tr",
          { "data-token": token.id },
          el("td", { text: token.name || "—" }),
          el("td", {}, el("code", { text: token.prefix })),
          el("td", { text: token.scopes.join(", ") }),
          el("td", { text: (budgets.get(token.id) || []).map(describeBudget).join("; ") || "—" }),
          el("td", { text: token.status }),
          el("td", { text: formatDate(token.last_used_at) }),
          el(
            "td",
            {},
            token.status === "active"
              ? el("button", {
                  type: "button",
                  class: "danger",
                  text: "Revoke",
                  "aria-label": `Revoke ${token.name || token.prefix}`,
                  onclick: () => revoke(token),
                })
              : "",
          ),
        ),
      ),
    );
    if (!tokens.length) body.append(el("tr", {}, el("td", { colspan: 7, text: "No tokens yet." })));
  } catch (error) {
    reportError(listError, error);
  }
}

async function revoke(token) {
  if (!window.confirm(`Revoke ${token.name || token.prefix}? Programs using it stop working.`)) return;
  listError.textContent = "";
  try {
    await api.delete(`/api/v1/auth/tokens/${token.id}`);
    await load();
  } catch (error) {
    reportError(listError, error);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const data = new FormData(form);
  const payload = { name: data.get("name") };
  const scopes = String(data.get("scopes") || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (scopes.length) payload.scopes = scopes;
  if (data.get("expires_at")) payload.expires_at = new Date(data.get("expires_at")).toISOString();
  try {
    const token = await api.post("/api/v1/auth/tokens", payload);
    secret.textContent = token.token;
    minted.hidden = false;
    form.reset();
    await load();
  } catch (error) {
    showErrors(form, error);
  }
});

// The server rendered the list with a revoke form per token (they work without
// JavaScript); with it, a revoke goes through the API and the list is read again.
body.addEventListener("submit", (event) => {
  const revokeForm = event.target.closest("form.revoke-form");
  if (!revokeForm) return;
  event.preventDefault();
  revoke({ id: revokeForm.dataset.token, name: revokeForm.dataset.label });
});

if (!body.hasAttribute("data-rendered")) load();
