// The memory page: search, pinned blocks and the graph are rendered by the server (they work
// without JavaScript); here search and saving run through the REST API without leaving the
// page, the facts list is read, and it follows the realtime topic `memory`.
import { api, clearErrors, el, formatDate, listAll, reportError, showErrors } from "./common.js";
import { coalesce, follow, updatedNow } from "./live.js";

const searchForm = document.getElementById("search-form");
const results = document.getElementById("search-results");
const facts = document.getElementById("facts");
const pinned = document.getElementById("pinned");
const graph = document.getElementById("graph");
const SVG = "http://www.w3.org/2000/svg";

function scores(hit) {
  return el(
    "dl",
    { class: "scores" },
    Object.entries(hit.scores).flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: Number(value).toFixed(3) })]),
  );
}

searchForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(searchForm);
  try {
    const answer = await api.post("/api/v1/memory/search", { query: new FormData(searchForm).get("query"), k: 10 });
    results.replaceChildren(
      ...answer.hits.map((hit) =>
        el("li", { class: "card" }, el("p", {}, el("strong", { text: hit.score.toFixed(3) }), ` ${hit.layer}: ${hit.record.text}`), scores(hit), hit.why.length ? el("p", { class: "hint", text: hit.why.join("; ") }) : ""),
      ),
    );
    if (!answer.hits.length) results.append(el("li", { text: "Nothing found." }));
  } catch (error) {
    showErrors(searchForm, error);
  }
});

async function history(fact, target) {
  const versions = await api.get(`/api/v1/memory/records/${fact.id}/history`);
  const rows = Array.isArray(versions) ? versions : versions.results || [];
  target.replaceChildren(
    ...rows.map((v) => el("li", { text: `${v.label || v.text} — valid ${formatDate(v.valid_from)} to ${v.valid_to ? formatDate(v.valid_to) : "now"}; recorded ${formatDate(v.recorded_at)}${v.superseded_at ? `, superseded ${formatDate(v.superseded_at)}` : ""}` })),
  );
}

async function loadFacts() {
  const rows = await listAll("/api/v1/memory/records?layer=semantic&page_size=50", 50);
  facts.replaceChildren(
    ...rows.map((fact) => {
      const versions = el("ol", { class: "history" });
      return el(
        "li",
        {},
        el("span", { text: `${fact.fact_key}: ${fact.label || fact.text} (since ${formatDate(fact.valid_from)})` }),
        " ",
        el("button", { type: "button", class: "link", text: "History", "aria-label": `History of ${fact.fact_key}`, onclick: () => history(fact, versions).catch(() => versions.replaceChildren(el("li", { text: "The history could not be read." }))) }),
        versions,
      );
    }),
  );
  if (!rows.length) facts.append(el("li", { text: "No facts yet." }));
}

// Each pinned block's server-rendered form saves through the API (PATCH) in place.
function enhancePinned(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const data = new FormData(form);
    try {
      const saved = await api.patch(`/api/v1/memory/pinned/${form.dataset.block}`, { label: data.get("label"), text: data.get("text") });
      form.querySelector("[name=label]").value = saved.label;
      const text = form.querySelector("[name=text]");
      text.textContent = saved.text; // the default value too: what a reset or reader sees
      text.value = saved.text;
      form.querySelector("[data-error-for='__all__']").textContent = "";
    } catch (error) {
      showErrors(form, error);
    }
  });
}

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

// Entities on a circle, relations as lines whose width follows their weight: enough to
// read a graph of a few dozen entities without a layout library.
function loadGraph() {
  const answer = JSON.parse(document.getElementById("graph-data").textContent);
  const nodes = (answer.nodes || []).slice(0, 60);
  if (!nodes.length) {
    graph.replaceChildren(el("p", { text: "No entities yet." }));
    return;
  }
  const size = 480;
  const radius = size / 2 - 70;
  const at = new Map(nodes.map((node, i) => {
    const angle = (2 * Math.PI * i) / nodes.length;
    return [node.id, [size / 2 + radius * Math.cos(angle), size / 2 + radius * Math.sin(angle)]];
  }));
  const title = svg("title", {}, `${nodes.length} entities, ${(answer.edges || []).length} relations`);
  const lines = (answer.edges || []).filter((e) => at.has(e.source) && at.has(e.target)).map((edge) => {
    const [x1, y1] = at.get(edge.source);
    const [x2, y2] = at.get(edge.target);
    return svg("line", { x1, y1, x2, y2, class: "edge", "stroke-width": Math.min(6, 1 + edge.weight) }, svg("title", {}, edge.kind));
  });
  const dots = nodes.map((node) => {
    const [x, y] = at.get(node.id);
    return svg("g", { class: "node" }, svg("circle", { cx: x, cy: y, r: 4 + Math.min(10, node.mentions) }), svg("text", { x, y: y - 14, "text-anchor": "middle" }, node.name));
  });
  graph.replaceChildren(svg("svg", { viewBox: `0 0 ${size} ${size}`, role: "img", "aria-label": title.textContent }, title, ...lines, ...dots));
}

for (const form of document.querySelectorAll("#pinned form[data-block]")) enhancePinned(form);
loadGraph();
const factsError = document.getElementById("facts-error");
loadFacts().catch((error) => reportError(factsError, error));
const live = document.getElementById("live");
follow(
  ["memory"],
  coalesce(async () => {
    try {
      await loadFacts();
      updatedNow(live, "Memory changed: facts updated");
    } catch (error) {
      reportError(factsError, error);
    }
  }, 500),
  { marker: live },
);
