// The tools page is rendered by the server, its run form included (it works without
// JavaScript); here the form runs through the REST API without leaving the page, and the
// executions list is read, and kept current from the realtime topic `tools`.
import { api, clearErrors, el, formatDate, reportError, showErrors } from "./common.js";
import { coalesce, follow, updatedNow } from "./live.js";

const form = document.getElementById("run-form");
const output = document.getElementById("run-output");
const executions = document.querySelector("#executions-table tbody");
const pageError = document.getElementById("tools-error");
const live = document.getElementById("live");

// The values of the generated inputs, converted back to what the schema asks for.
function argumentsOf() {
  const values = {};
  const problems = {};
  for (const input of form.querySelectorAll("[name^='arguments.']")) {
    const name = input.name.slice("arguments.".length);
    const kind = input.dataset.kind;
    if (kind === "boolean") {
      values[name] = input.checked;
      continue;
    }
    if (input.value === "") continue;
    try {
      if (kind === "enum" || kind === "json") values[name] = JSON.parse(input.value);
      else if (kind === "integer" || kind === "number") values[name] = Number(input.value);
      else values[name] = input.value;
    } catch {
      problems[`arguments.${name}`] = ["Not valid JSON."];
    }
  }
  return { values, problems };
}

if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const { values, problems } = argumentsOf();
    if (Object.keys(problems).length) {
      showErrors(form, { message: "Check the highlighted fields.", fields: problems });
      return;
    }
    try {
      const execution = await api.post("/api/v1/tools/execute", { tool: form.dataset.tool, arguments: values });
      output.hidden = false;
      output.textContent = JSON.stringify(execution.status === "succeeded" ? execution.result : { status: execution.status, error: execution.error }, null, 2);
      output.dataset.status = execution.status;
      await loadExecutions();
    } catch (error) {
      showErrors(form, error);
    }
  });
  const first = form.querySelector("input:not([type=hidden]), select, textarea");
  if (first && new URLSearchParams(window.location.search).has("tool")) first.focus();
}

async function loadExecutions() {
  const page = await api.get("/api/v1/tools/results?page_size=20");
  const rows = page.results || [];
  executions.replaceChildren(
    ...rows.map((run) =>
      el(
        "tr",
        { "data-execution": run.id },
        el("td", { text: `${run.tool_name} v${run.tool_version}` }),
        el("td", { text: run.status }),
        el("td", { text: formatDate(run.created_at) }),
        el("td", {}, el("code", { class: "clip", text: run.status === "succeeded" ? JSON.stringify(run.result) : run.error || run.error_code })),
      ),
    ),
  );
  if (!rows.length) executions.append(el("tr", {}, el("td", { colspan: 4, text: "No executions yet." })));
}

loadExecutions().catch((error) => reportError(pageError, error));
// A run finishing anywhere (another tab, a program with a token, a chat's tool call).
follow(
  ["tools"],
  coalesce(async () => {
    try {
      await loadExecutions();
      updatedNow(live, "New execution: updated");
    } catch (error) {
      reportError(pageError, error);
    }
  }, 300),
  { marker: live },
);
