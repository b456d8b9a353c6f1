import { clearErrors, el, money, request, showErrors } from "./common.js";

const form = document.getElementById("chat-form");
const conversation = document.getElementById("conversation");
const history = [];

function bubble(role, text) {
  const content = el("div", { class: "content", text });
  const item = el("li", { class: `turn ${role}` }, el("span", { class: "role", text: role }), content);
  conversation.append(item);
  return { item, content };
}

function report(details) {
  const attempts = el(
    "ol",
    { class: "attempts" },
    details.attempts.map((a) =>
      el("li", { text: `#${a.number} ${a.provider}/${a.model}: ${a.outcome}${a.error_code ? ` (${a.error_code})` : ""}, ${a.duration_ms.toFixed(1)} ms` }),
    ),
  );
  return el(
    "dl",
    { class: "report", "data-report": "" },
    el("dt", { text: "Served by" }),
    el("dd", { "data-provider": details.provider, text: `${details.provider} · ${details.model}` }),
    el("dt", { text: "Attempts" }),
    el("dd", {}, attempts),
    el("dt", { text: "Tokens" }),
    el("dd", { text: `${details.usage.input_tokens} in, ${details.usage.output_tokens} out${details.usage.estimated ? " (estimated)" : ""}` }),
    el("dt", { text: "Cost" }),
    el("dd", { "data-cost": details.cost, text: money(details.cost) }),
    el("dt", { text: "Overhead" }),
    el("dd", { text: `${details.overhead_ms.toFixed(1)} ms (first token after ${details.ttft_ms ?? "—"} ms)` }),
  );
}

async function send(model, system, prompt) {
  const messages = [];
  if (system) messages.push({ role: "system", content: system });
  messages.push(...history, { role: "user", content: prompt });
  const response = await request("POST", "/console/playground/stream", { model, messages }, { raw: true });
  history.push({ role: "user", content: prompt });
  bubble("user", prompt);
  const answer = bubble("assistant", "");
  answer.item.setAttribute("aria-busy", "true");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) {
      if (!line) continue;
      const event = JSON.parse(line);
      if (event.type === "delta") {
        text += event.content;
        answer.content.textContent = text;
      } else if (event.type === "selected") {
        answer.item.dataset.provider = event.provider;
      } else if (event.type === "report") {
        answer.item.append(report(event));
      } else if (event.type === "error") {
        answer.item.append(el("p", { class: "form-error", role: "alert", text: `${event.message} (${event.code})` }));
      }
    }
  }
  answer.item.removeAttribute("aria-busy");
  history.push({ role: "assistant", content: text });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const data = new FormData(form);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await send(String(data.get("model")), String(data.get("system") || "").trim(), String(data.get("prompt") || ""));
    form.querySelector("textarea[name=prompt]").value = "";
  } catch (error) {
    showErrors(form, error);
  } finally {
    button.disabled = false;
  }
});
