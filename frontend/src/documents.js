// Documents: the list, create, share, versions, and the collaborative editor: CodeMirror 6
// bound to a Yjs document that y-websocket keeps in sync through /ws/documents/{id}/
// (same origin, the session cookie), with who else is here and their cursors.
import { defaultKeymap } from "@codemirror/commands";
import { EditorView, keymap } from "@codemirror/view";
import { WebsocketProvider } from "y-websocket";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import * as Y from "yjs";
import { api, clearErrors, el, formatDate, listAll, reportError, showErrors } from "./common.js";

// The text root the exports render as plain text and `documents import` writes by default.
const ROOT = "content";
const COLOURS = ["#1f4fb8", "#a3261b", "#2e7d32", "#8a3ffc", "#b25b00", "#00707a", "#c0176c"];

// The CSP refuses inline styles (ADR 0025). y-codemirror.next writes its cursors' colour as a
// style attribute; the same declarations through the CSSOM are allowed, so route them there.
const setAttribute = Element.prototype.setAttribute;
Element.prototype.setAttribute = function (name, value) {
  if (name === "style") this.style.cssText = value;
  else setAttribute.call(this, name, value);
};

const me = (document.querySelector(".who") || {}).textContent || "someone";
const colour = COLOURS[[...me].reduce((sum, c) => (sum * 31 + c.charCodeAt(0)) >>> 0, 7) % COLOURS.length];

const createForm = document.getElementById("create-form");
const list = document.getElementById("documents-list");
const listError = document.getElementById("documents-error");
const panel = document.getElementById("document");
const documentError = document.getElementById("document-error");
const versionForm = document.getElementById("version-form");
const versionsList = document.getElementById("versions-list");
const versionsError = document.getElementById("versions-error");
const shareSection = document.getElementById("shares");
const shareForm = document.getElementById("share-form");
const sharesList = document.getElementById("shares-list");
const sharesError = document.getElementById("shares-error");
const presence = document.getElementById("presence");
const connection = document.getElementById("connection");
const renameForm = document.getElementById("rename-form");
const live = document.getElementById("live");

const selected = new URLSearchParams(window.location.search).get("id");
let current = null;
let editorDoc = null;

// Under the server's 4 MiB request cap once in base64; a larger copy is not sent.
const MAX_STATE_BYTES = 2 * 1024 * 1024;

// The editor's own copy of the document, for a keep or a restore: the server stores what
// it holds that has not arrived over the websocket yet, so the last keystrokes count.
function editorState() {
  if (!editorDoc) return {};
  const bytes = Y.encodeStateAsUpdate(editorDoc);
  if (bytes.length > MAX_STATE_BYTES) return {};
  let binary = "";
  for (let at = 0; at < bytes.length; at += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(at, at + 0x8000));
  }
  return { state: btoa(binary) };
}

async function loadList() {
  listError.textContent = "";
  try {
    const documents = await listAll("/api/v1/documents");
    list.replaceChildren(
      ...documents.map((doc) =>
        el(
          "li",
          { "data-document": doc.id },
          el("a", {
            href: `?id=${encodeURIComponent(doc.id)}`,
            text: doc.title,
            "aria-current": doc.id === selected ? "page" : undefined,
          }),
          el("span", { class: "hint", text: ` · ${formatDate(doc.updated_at)}` }),
        ),
      ),
    );
    if (!documents.length) list.append(el("li", { text: "No documents yet." }));
  } catch (error) {
    reportError(listError, error);
  }
}

createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(createForm);
  try {
    const doc = await api.post("/api/v1/documents", { title: new FormData(createForm).get("title") });
    window.location.assign(`?id=${encodeURIComponent(doc.id)}`);
  } catch (error) {
    showErrors(createForm, error);
  }
});

// --- One document -----------------------------------------------------------------------

async function openDocument(id) {
  try {
    current = await api.get(`/api/v1/documents/${encodeURIComponent(id)}`);
  } catch (error) {
    panel.hidden = false;
    reportError(documentError, error);
    return;
  }
  panel.hidden = false;
  showTitle(current.title);
  document.getElementById("document-meta").textContent =
    `You may: ${current.permissions.map((p) => p.replace("documents.", "")).join(", ")}`;
  const may = (permission) => current.permissions.includes(`documents.${permission}`);
  versionForm.hidden = !may("edit");
  shareSection.hidden = !may("share");
  renameForm.hidden = !may("edit");
  startEditor(current.id, may("edit"));
  followChanges(current.id);
  await loadVersions();
  if (may("share")) await loadShares();
}

function startEditor(id, editable) {
  const ydoc = new Y.Doc();
  editorDoc = ydoc;
  const text = ydoc.getText(ROOT);
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const provider = new WebsocketProvider(`${scheme}://${window.location.host}/ws/documents`, `${id}/`, ydoc);
  provider.awareness.setLocalStateField("user", { name: me, color: colour, colorLight: `${colour}33` });
  provider.on("status", ({ status }) => {
    connection.textContent = status === "connected" ? "Connected: changes are saved as you type." : `Connection: ${status}…`;
  });
  provider.on("sync", (synced) => {
    if (synced) connection.dataset.synced = "true";
  });
  const showPresence = () => {
    const people = [...provider.awareness.getStates().entries()]
      .filter(([, state]) => state.user)
      .sort(([a], [b]) => (a === ydoc.clientID ? -1 : b === ydoc.clientID ? 1 : a - b));
    presence.replaceChildren(
      ...people.map(([client, state]) => {
        const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
        swatch.style.backgroundColor = state.user.color;
        return el("li", { "data-client": client }, swatch, state.user.name, client === ydoc.clientID ? " (you)" : "");
      }),
    );
  };
  provider.awareness.on("change", showPresence);
  showPresence();

  // In a shadow root, CodeMirror's styles go to a constructed stylesheet, which the CSP
  // allows; in the document itself it would add a <style> element, which the CSP refuses.
  const host = document.getElementById("editor");
  const root = host.attachShadow({ mode: "open" });
  const view = new EditorView({
    doc: text.toString(),
    root,
    parent: root,
    extensions: [
      keymap.of([...yUndoManagerKeymap, ...defaultKeymap]),
      EditorView.lineWrapping,
      EditorView.editable.of(editable),
      // aria-labelledby cannot reach across the shadow root to the visible label.
      EditorView.contentAttributes.of({ "aria-label": "Content", "aria-multiline": "true" }),
      EditorView.theme({
        "&": { minHeight: "12rem", border: "1px solid #7a8594", borderRadius: "4px", background: "#fff" },
        "&.cm-focused": { outline: "3px solid #c25e00", outlineOffset: "2px" },
        ".cm-content": { fontFamily: "ui-monospace, monospace", padding: "0.5rem 0" },
        // A name label shows on hover; faded half-way, its white text lacks contrast.
        ".cm-ySelectionInfo": { transition: "none" },
      }),
      yCollab(text, provider.awareness),
    ],
  });
  window.addEventListener("pagehide", () => {
    view.destroy();
    provider.destroy();
  });
}

function showTitle(title) {
  current.title = title;
  document.getElementById("document-heading").textContent = title;
  document.title = `${title} · Documents · Lumina`;
}

renameForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(renameForm);
  try {
    const doc = await api.patch(`/api/v1/documents/${current.id}`, { title: new FormData(renameForm).get("title") });
    renameForm.reset();
    showTitle(doc.title);
    await loadList();
  } catch (error) {
    showErrors(renameForm, error);
  }
});

// What others do to the document (rename, share, versions, deletion) arrives on the
// realtime socket (topic documents:<id>), so the page follows without a reload.
function followChanges(id, delay = 1000) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/realtime/`);
  socket.addEventListener("message", async (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    if (data.type === "ready") {
      socket.send(JSON.stringify({ type: "subscribe", topics: [`documents:${id}`] }));
    } else if (data.type === "subscribed" && data.accepted.length) {
      live.dataset.following = "true";
      delay = 1000;
    } else if (data.type === "event") {
      await applyChange(data.event, data.data || {});
    }
  });
  socket.addEventListener("close", (event) => {
    delete live.dataset.following;
    // 44xx: not signed in, or the document is no longer readable: do not retry.
    if (event.code >= 4400 && event.code < 4500) return;
    setTimeout(() => followChanges(id, Math.min(delay * 2, 30000)), delay);
  });
}

async function applyChange(name, data) {
  const event = name.split(".").pop();
  if (event === "DocumentRenamed" && data.title) {
    showTitle(data.title);
    live.textContent = `Renamed to “${data.title}”.`;
    await loadList();
  } else if (event === "DocumentShared" || event === "DocumentUnshared") {
    if (!shareSection.hidden) await loadShares();
  } else if (event === "DocumentVersionCreated" || event === "DocumentVersionRestored") {
    await loadVersions();
  } else if (event === "DocumentDeleted") {
    live.textContent = "This document was deleted.";
    await loadList();
  }
}

async function loadVersions() {
  versionsError.textContent = "";
  const canRestore = current.permissions.includes("documents.edit");
  try {
    const versions = await listAll(`/api/v1/documents/${current.id}/versions`);
    versionsList.replaceChildren(
      ...versions.map((version) =>
        el(
          "li",
          { "data-version": version.id },
          `${version.name} · ${formatDate(version.created_at)} `,
          canRestore
            ? el("button", {
                type: "button",
                class: "link",
                text: "Restore",
                "aria-label": `Restore ${version.name}`,
                onclick: () => restore(version),
              })
            : "",
        ),
      ),
    );
    if (!versions.length) versionsList.append(el("li", { text: "No versions kept yet." }));
  } catch (error) {
    reportError(versionsError, error);
  }
}

async function restore(version) {
  if (!window.confirm(`Restore ${version.name}? The current text is replaced for everyone (history keeps it).`)) return;
  try {
    await api.post(`/api/v1/documents/${current.id}/versions/${version.id}/restore`, editorState());
  } catch (error) {
    reportError(versionsError, error);
  }
}

versionForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(versionForm);
  try {
    await api.post(`/api/v1/documents/${current.id}/versions`, {
      name: new FormData(versionForm).get("name"),
      ...editorState(),
    });
    versionForm.reset();
    await loadVersions();
  } catch (error) {
    showErrors(versionForm, error);
  }
});

async function loadShares() {
  sharesError.textContent = "";
  try {
    const shares = await listAll(`/api/v1/documents/${current.id}/shares`);
    sharesList.replaceChildren(
      ...shares.map((share) =>
        el("li", { "data-share": share.principal_id }, `${share.principal_label}: ${share.permission}`),
      ),
    );
    if (!shares.length) sharesList.append(el("li", { text: "Not shared." }));
  } catch (error) {
    reportError(sharesError, error);
  }
}

shareForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(shareForm);
  const data = new FormData(shareForm);
  try {
    await api.post(`/api/v1/documents/${current.id}/shares`, {
      principal: data.get("principal"),
      permission: data.get("permission"),
    });
    shareForm.reset();
    await loadShares();
  } catch (error) {
    showErrors(shareForm, error);
  }
});

loadList();
if (selected) openDocument(selected);
