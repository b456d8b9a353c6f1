import { api, clearErrors, el, formatDate, listAll, reportError, showErrors } from "./common.js";

const list = document.getElementById("tool-list");
const form = document.getElementById("run-form");
const hint = document.getElementById("run-hint");
const output = document.getElementById("run-output");
const executions = document.querySelector("#executions-table tbody");
const pageError = document.getElementById("tools-error");
let current = null;

// One input per argument of the tool's JSON Schema; values are converted back on submit.
function fieldFor(name, schema, required) {
  const id = `arg-${name}`;
  const errorId = `${id}-error`;
  const label = el("label", { for: id }, schema.title || name, required ? " (required)" : "", schema.description ? el("span", { class: "hint", text: ` — ${schema.description}` }) : "");
  const common = { id, name: `arguments.${name}`, "aria-describedby": errorId, required };
  let input;
  if (Array.isArray(schema.enum)) {
    input = el("select", common, schema.enum.map((value) => el("option", { value: JSON.stringify(value), text: String(value) })));
    input.dataset.kind = "enum";
  } else if (schema.type === "boolean") {
    input = el("input", { ...common, type: "checkbox", checked: schema.default === true });
    input.dataset.kind = "boolean";
  } else if (schema.type === "integer" || schema.type === "number") {
    input = el("input", { ...common, type: "number", step: schema.type === "integer" ? "1" : "any", min: schema.minimum, max: schema.maximum, value: schema.default });
    input.dataset.kind = schema.type;
  } else if (schema.type === "string") {
    input = el("input", { ...common, type: "text", maxlength: schema.maxLength, value: schema.default });
    input.dataset.kind = "string";
  } else {
    input = el("textarea", { ...common, rows: 3, placeholder: "JSON" });
    input.dataset.kind = "json";
    if (schema.default !== undefined) input.value = JSON.stringify(schema.default);
  }
  return [label, input, el("p", { class: "field-error", id: errorId, "data-error-for": `arguments.${name}` })];
}

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

function choose(tool) {
  current = tool;
  const schema = tool.input_schema || {};
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).flatMap(([name, property]) => fieldFor(name, property, required.has(name)));
  form.replaceChildren(
    el("p", { class: "form-error", role: "alert", "data-error-for": "__all__" }),
    el("p", { class: "field-error", "data-error-for": "arguments" }),
    ...fields,
    el("button", { type: "submit", text: `Run ${tool.name}` }),
  );
  hint.textContent = tool.description || tool.name;
  form.hidden = false;
  output.hidden = true;
  for (const item of list.querySelectorAll("button")) item.setAttribute("aria-pressed", String(item.dataset.tool === tool.name));
  const first = form.querySelector("input, select, textarea, button");
  if (first) first.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const { values, problems } = argumentsOf();
  if (Object.keys(problems).length) {
    showErrors(form, { message: "Check the highlighted fields.", fields: problems });
    return;
  }
  try {
    const execution = await api.post("/api/v1/tools/execute", { tool: current.name, arguments: values });
    output.hidden = false;
    output.textContent = JSON.stringify(execution.status === "succeeded" ? execution.result : { status: execution.status, error: execution.error }, null, 2);
    output.dataset.status = execution.status;
    await loadExecutions();
  } catch (error) {
    showErrors(form, error);
  }
});

async function loadExecutions() {
  const page = await api.get("/api/v1/tools/results?page_size=20");
  const rows = page.results || [];
  executions.replaceChildren(
    ...rows.map((run) =>
      el(
        "tr",
        {},
        el("td", { text: `${run.tool_name} v${run.tool_version}` }),
        el("td", { text: run.status }),
        el("td", { text: formatDate(run.created_at) }),
        el("td", {}, el("code", { class: "clip", text: run.status === "succeeded" ? JSON.stringify(run.result) : run.error || run.error_code })),
      ),
    ),
  );
  if (!rows.length) executions.append(el("tr", {}, el("td", { colspan: 4, text: "No executions yet." })));
}

async function load() {
  try {
    const tools = (await listAll("/api/v1/tools")).filter((tool) => tool.enabled);
    list.replaceChildren(
      ...tools.map((tool) =>
        el("li", {}, el("button", { type: "button", class: "link", "data-tool": tool.name, "aria-pressed": "false", onclick: () => choose(tool) }, el("strong", { text: tool.name }), ` (${tool.kind}) `, el("span", { class: "hint", text: tool.description }))),
      ),
    );
    if (!tools.length) list.append(el("li", { text: "No tools you may run." }));
    await loadExecutions();
  } catch (error) {
    reportError(pageError, error);
  }
}

load();
