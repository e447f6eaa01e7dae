// The charmspace web shell: a thin renderer of server-driven views (no build step).
//
// The server sends nodes (mount) and changes to them (patch) over /api/ws; this
// module builds the DOM with createElement/createTextNode/setAttribute only,
// through allowlists, and sends events and edits back naming nodes, never cells.
// All logic runs on the server. docs/shell.md describes the protocol.

const VERSION = 1;
const DEBOUNCE_MS = 300;
const OFFLINE_AFTER_MS = 500;

// --- allowlists ------------------------------------------------------------------

const HTML_TAGS = new Set([
  "a", "abbr", "article", "aside", "b", "blockquote", "br", "caption", "cite", "code",
  "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure",
  "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins",
  "kbd", "label", "legend", "fieldset", "li", "main", "mark", "meter", "nav", "ol",
  "option", "p", "pre", "progress", "q", "s", "section", "small", "span", "strong",
  "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr",
  "u", "ul", "var",
]);
// Elements left out with everything inside them: they run code or load other pages.
const DROPPED_TAGS = new Set([
  "script", "style", "iframe", "frame", "frameset", "object", "embed", "base", "link",
  "meta", "svg", "math", "template", "noscript", "form", "portal",
]);
const ATTRS = new Set([
  "id", "class", "title", "alt", "href", "src", "target", "name", "type", "placeholder",
  "value", "checked", "disabled", "readonly", "min", "max", "step", "for", "width", "height",
  "colspan", "rowspan", "role", "tabindex", "lang", "dir", "open", "selected", "multiple",
  "rows", "cols", "maxlength", "minlength", "pattern", "required", "autocomplete",
  "datetime", "label", "low", "high", "optimum", "start", "reversed", "hidden", "loading",
]);
const URL_ATTRS = new Set(["href", "src"]);
const VALUE_REFUSALS = new Set(["InputTypeError", "SchemaError"]); // edits refused for their value
const INPUT_TYPES = new Set(["text", "number", "email", "password", "search", "date", "time"]);
const EVENT_NAMES = ["click", "change", "input", "submit", "keydown", "focus", "blur"];

function safeUrl(value, isImage) {
  // Browsers ignore control characters and whitespace inside a scheme ("java\tscript:").
  const compact = String(value).replace(/[\u0000-\u0020\u007f-\u009f]/g, "").toLowerCase();
  const scheme = /^([a-z][a-z0-9+.-]*):/.exec(compact);
  if (!scheme) return true; // relative
  if (["http", "https", "mailto", "tel"].includes(scheme[1])) return true;
  return isImage && compact.startsWith("data:image/");
}

function safeCss(value) {
  const compact = String(value).replace(/\\|\/\*.*?\*\/|\s/g, "").toLowerCase();
  return !["url(", "expression(", "javascript:", "vbscript:", "-moz-binding", "behavior:", "@import"]
    .some((bad) => compact.includes(bad));
}

// --- the page's state ------------------------------------------------------------

const tab = (() => {
  let id = sessionStorage.getItem("cs-tab");
  if (!id) {
    id = Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("cs-tab", id);
  }
  return id;
})();

function nextId() {
  // Kept in sessionStorage: the server remembers which ids it applied, across reloads too.
  const n = Number(sessionStorage.getItem("cs-n") || "0") + 1;
  sessionStorage.setItem("cs-n", String(n));
  return `${tab}:${n}`;
}

const views = new Map(); // view name -> {charm, host, root, nodes: Map(id -> entry), errorBox, statusBox}
const unacked = []; // event and edit frames not yet acknowledged, in send order
const pendingOpen = new Map(); // frame id -> view name
const frameOwner = new Map(); // frame id -> {view, node, kind}
let socket = null;
let welcomed = false;
let offlineTimer = null;
let attempt = 0;
let everOpened = false;

function csrfToken() {
  const match = /(?:^|;\s*)charmspace_csrf=([^;]+)/.exec(document.cookie);
  return match ? decodeURIComponent(match[1]) : "";
}

// --- rendering ---------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}

// An entry: {node, el (gets props and events), box (gets children), outer (sits in the parent)}
function build(view, node, parentTag) {
  let entry;
  if ("text" in node) {
    const t = document.createTextNode(node.text);
    entry = { node, el: null, box: null, outer: t, text: t };
  } else {
    entry = component(view, node);
  }
  if (parentTag === "list" && entry.outer) {
    const li = document.createElement("li");
    li.append(entry.outer);
    entry.outer = li;
  }
  view.nodes.set(node.id, entry);
  if (!("text" in node) && entry.box) {
    entry.children = [];
    for (const child of node.children || []) {
      const c = build(view, child, node.tag);
      if (c.outer) entry.box.append(c.outer);
      entry.children.push(child.id);
    }
    if (node.tag === "tabs") setupTabs(view, entry);
  }
  return entry;
}

function component(view, node) {
  const tag = String(node.tag || "").toLowerCase();
  const props = node.props || {};
  let e;
  let box;
  let outer;
  switch (tag) {
    case "stack": case "row": case "card": case "render":
      e = el("div", { class: `cs-${tag}` });
      break;
    case "screen": {
      e = el("div", { class: "cs-screen" });
      const header = el("header", { class: "cs-screen-header" });
      if (typeof props.title === "string") header.append(el("h2", {}, props.title));
      box = el("div", { class: "cs-screen-body" });
      e.append(header, box);
      break;
    }
    case "heading": {
      const level = Math.min(6, Math.max(1, Number(props.level) || 2));
      e = document.createElement(`h${level}`);
      break;
    }
    case "text": e = document.createElement("span"); break;
    case "label": e = document.createElement("label"); break;
    case "button": e = el("button", { type: "button" }); break;
    case "oauth-button": e = el("button", { type: "button", class: "cs-oauth" }); break;
    case "input": {
      const type = INPUT_TYPES.has(props.type) ? props.type : "text";
      e = el("input", { type });
      break;
    }
    case "textarea": e = document.createElement("textarea"); break;
    case "checkbox": e = el("input", { type: "checkbox" }); break;
    case "switch": e = el("input", { type: "checkbox", role: "switch", class: "cs-switch" }); break;
    case "select": e = document.createElement("select"); break;
    case "list": e = el("ul", { class: "cs-list" }); break;
    case "tabs": e = el("div", { class: "cs-tabs" }); break;
    case "link": e = document.createElement("a"); break;
    case "progress": e = document.createElement("progress"); break;
    case "loader": e = el("div", { class: "cs-loader", role: "progressbar", "aria-busy": "true" }); break;
    default:
      if (DROPPED_TAGS.has(tag)) return { node, el: null, box: null, outer: null };
      e = document.createElement(HTML_TAGS.has(tag) ? tag : "span");
  }
  if (e.tagName === "INPUT" || e.tagName === "TEXTAREA" || e.tagName === "IMG" || e.tagName === "BR" || e.tagName === "HR" || e.tagName === "PROGRESS") {
    box = null;
  } else if (!box) {
    box = e;
  }
  outer = outer || e;
  const entry = { node, el: e, box, outer, tag };
  e.dataset.csNode = node.id;
  for (const [name, value] of Object.entries(props)) setProp(entry, name, value);
  if (tag === "select") setOptions(e, props.options);
  if (node.bind) for (const [prop, value] of Object.entries(node.bind)) applyBound(view, entry, prop, value, null);
  listen(view, entry);
  return entry;
}

function setOptions(select, options) {
  if (!Array.isArray(options)) return;
  for (const o of Array.from(select.querySelectorAll("option[data-cs-option]"))) o.remove();
  for (const option of options) {
    const value = typeof option === "object" && option ? option.value : option;
    const label = typeof option === "object" && option ? option.label ?? option.value : option;
    const o = el("option", { "data-cs-option": "" }, String(label ?? ""));
    o.value = String(value ?? "");
    select.append(o);
  }
}

function setProp(entry, name, value) {
  const e = entry.el;
  if (!e) return;
  if (name === "key" || name === "options" || name === "level" || (entry.tag === "screen" && name === "title")) return;
  if (entry.tag === "input" && name === "type") return; // chosen from the allowlist when built
  if (name === "style") {
    e.removeAttribute("style");
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) {
        const prop = k.replace(/_/g, "-").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
        if (/^-?[a-z][a-z-]*$/.test(prop) && (typeof v === "string" || typeof v === "number") && safeCss(v)) {
          e.style.setProperty(prop, String(v));
        }
      }
    }
    return;
  }
  let attr = name;
  if (/^(data|aria)_/.test(attr)) attr = attr.replace(/_/g, "-");
  const lower = attr.toLowerCase();
  if (lower.startsWith("on") || !(ATTRS.has(lower) || /^(data|aria)-[a-z0-9-]+$/.test(lower))) return;
  if (lower === "data-cs-node") return;
  if (value === null || value === undefined || value === false) {
    e.removeAttribute(attr);
    if (lower === "value" && "value" in e && document.activeElement !== e) e.value = "";
    if (lower === "checked" && e.tagName === "INPUT") e.checked = false;
    return;
  }
  const text = value === true ? "" : typeof value === "string" ? value : JSON.stringify(value);
  if (URL_ATTRS.has(lower) && !safeUrl(text, e.tagName === "IMG")) {
    e.removeAttribute(attr);
    return;
  }
  e.setAttribute(attr, text);
  // The attributes only set the initial state; a plain prop must show as the current one.
  if (lower === "checked" && e.tagName === "INPUT") e.checked = true;
  if (lower === "value" && "value" in e && document.activeElement !== e) e.value = text;
  if (lower === "target") {
    if (text === "_blank") e.setAttribute("rel", "noopener noreferrer");
    else e.removeAttribute("rel");
  }
  if (entry.tag === "progress" && (lower === "value" || lower === "max")) e.setAttribute(lower, text);
}

function setupTabs(view, entry) {
  // Which tab shows is the page's own state: no round trip, nothing stored.
  const bar = el("div", { class: "cs-tabbar", role: "tablist" });
  const panels = entry.children.map((id) => view.nodes.get(id)).filter((c) => c && c.outer);
  let selected = entry.selected || 0;
  panels.forEach((panel, i) => {
    const title = panel.node.props && typeof panel.node.props.title === "string" ? panel.node.props.title : `Tab ${i + 1}`;
    const button = el("button", { type: "button", role: "tab", "aria-selected": String(i === selected) }, title);
    button.addEventListener("click", () => { entry.selected = i; refreshTabs(view, entry); });
    bar.append(button);
    if (panel.outer.nodeType === 1) panel.outer.hidden = i !== selected;
  });
  entry.el.prepend(bar);
  entry.tabbar = bar;
}

function refreshTabs(view, entry) {
  if (entry.tabbar) entry.tabbar.remove();
  setupTabs(view, entry);
}

// --- bound inputs: the focused input owns its value --------------------------------

function isTextual(e) {
  return e && (e.tagName === "TEXTAREA" || (e.tagName === "INPUT" && e.type !== "checkbox"));
}

function applyBound(view, entry, prop, value, commit) {
  const e = entry.el;
  if (!e) return;
  entry.server = { prop, value, commit };
  const owner = entry.owner || (entry.owner = { pending: null, inflight: new Set(), acked: 0, base: null });
  // A focused input with edits not yet acknowledged keeps what the user typed.
  if (document.activeElement === e && (owner.pending || owner.inflight.size)) return;
  if (commit !== null && commit < owner.acked) return; // older than our own last commit
  if (owner.inflight.size) return;
  owner.base = commit;
  if (owner.refused && commit !== null) {
    // A newer value of the cell (a click, another user) replaces the refused text and its message.
    owner.refused = false;
    clearFieldError(entry);
  }
  setBoundValue(e, prop, value);
}

function setBoundValue(e, prop, value) {
  if (prop === "checked") {
    e.checked = Boolean(value);
    return;
  }
  const text = value === null || value === undefined ? "" : String(value);
  if (e.value === text) return;
  const focused = document.activeElement === e && isTextual(e);
  const start = focused ? e.selectionStart : null;
  const end = focused ? e.selectionEnd : null;
  e.value = text;
  if (focused && start !== null) {
    try { e.setSelectionRange(Math.min(start, text.length), Math.min(end, text.length)); } catch { /* e.g. number inputs */ }
  }
}

function boundProp(entry) {
  const bind = entry.node.bind || {};
  return "checked" in bind ? "checked" : "value" in bind ? "value" : null;
}

function readValue(entry, prop) {
  const e = entry.el;
  if (prop === "checked") return e.checked;
  if (e.type === "number") return e.value === "" ? null : Number(e.value);
  return e.value;
}

function sendEdit(view, entry) {
  const owner = entry.owner;
  if (!owner || !owner.pending) return;
  clearTimeout(owner.pending);
  owner.pending = null;
  owner.refused = false; // a new value: its own ack or nack says what became of it
  const prop = boundProp(entry);
  if (!prop) return;
  const id = nextId();
  owner.inflight.add(id);
  frameOwner.set(id, { view: view.name, node: entry.node.id, kind: "edit" });
  send({ type: "edit", id, view: view.name, node: entry.node.id, prop, value: readValue(entry, prop), base: owner.base }, true);
}

function flushEdits() {
  // Before any event leaves, every edit typed so far goes first (frames keep their order).
  for (const view of views.values()) {
    for (const entry of view.nodes.values()) if (entry.owner && entry.owner.pending) sendEdit(view, entry);
  }
}

function listen(view, entry) {
  const e = entry.el;
  const prop = boundProp(entry);
  if (prop) {
    const owner = entry.owner || (entry.owner = { pending: null, inflight: new Set(), acked: 0, base: null });
    const schedule = (delay) => {
      clearTimeout(owner.pending);
      owner.pending = setTimeout(() => sendEdit(view, entry), delay);
    };
    if (isTextual(e)) {
      e.addEventListener("input", () => { if (!entry.composing) schedule(DEBOUNCE_MS); });
      e.addEventListener("compositionstart", () => { entry.composing = true; });
      e.addEventListener("compositionend", () => { entry.composing = false; schedule(DEBOUNCE_MS); });
      e.addEventListener("blur", () => sendEdit(view, entry));
      e.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && !entry.composing) sendEdit(view, entry); });
    } else {
      e.addEventListener("change", () => { schedule(0); sendEdit(view, entry); });
    }
  }
  for (const name of EVENT_NAMES) {
    e.addEventListener(name, (ev) => {
      const on = entry.node.on || [];
      if (!on.includes(name)) return;
      if (name === "submit") ev.preventDefault();
      const target = ev.target;
      // data_* props as the server sent them (numbers stay numbers), not the DOM's strings.
      const dataset = {};
      for (const [k, v] of Object.entries(entry.node.props || {})) if (k.startsWith("data_")) dataset[k] = v;
      const detail = { type: name, target: {}, dataset };
      if ("value" in target) detail.target.value = target.value;
      if (target.type === "checkbox") detail.target.checked = target.checked;
      if (ev.key !== undefined) detail.key = ev.key;
      flushEdits();
      const id = nextId();
      frameOwner.set(id, { view: view.name, node: entry.node.id, kind: "event" });
      send({ type: "event", id, view: view.name, node: entry.node.id, name, detail }, true);
    });
  }
  if (entry.tag === "oauth-button") e.addEventListener("click", () => signInWithGoogle(entry));
}

// A Google sign-in button names its auth cell (data_auth_space, data_auth_id,
// data_auth_path) and scopes (data_scopes): the server starts the sign-in as this
// session's user and answers the provider's URL, the only place the page then goes
// (and only over http or https). A button without them is a plain button.
const GOOGLE_LOGIN = "/api/integrations/google-oauth/login";

async function signInWithGoogle(entry) {
  const props = entry.node.props || {};
  const space = props.data_auth_space;
  const id = props.data_auth_id;
  const path = props.data_auth_path;
  if (typeof space !== "string" || typeof id !== "string" || !Array.isArray(path)) return;
  const scopes = Array.isArray(props.data_scopes) ? props.data_scopes.filter((s) => typeof s === "string") : [];
  entry.el.disabled = true;
  clearFieldError(entry);
  try {
    const answer = await api("POST", GOOGLE_LOGIN, { auth_cell: { "/": { "link@1": { space, id, path } } }, scopes });
    const target = new URL(String(answer && answer.url), location.href);
    if (target.protocol !== "https:" && target.protocol !== "http:") throw new Error("The sign-in address is not a web address.");
    location.assign(target.href);
  } catch (error) {
    entry.el.disabled = false;
    showFieldError(entry, `Could not start the Google sign-in: ${error.message}`);
  }
}

// --- mount and patch ---------------------------------------------------------------

function mount(view, root, commit) {
  const focused = document.activeElement;
  const focusedId = focused && focused.dataset ? focused.dataset.csNode : null;
  const kept = focusedId ? view.nodes.get(focusedId) : null;
  const keep = kept && kept.owner && (kept.owner.pending || kept.owner.inflight.size) ? kept : null;
  const start = keep && isTextual(keep.el) ? keep.el.selectionStart : null;
  const end = keep && isTextual(keep.el) ? keep.el.selectionEnd : null;
  const typed = keep ? readValue(keep, boundProp(keep)) : null;
  const owners = new Map();
  const typedValues = new Map(); // inputs whose edits are not in yet keep what was typed
  for (const [id, entry] of view.nodes) {
    if (!entry.owner) continue;
    owners.set(id, entry.owner);
    if (entry.owner.pending || entry.owner.inflight.size) typedValues.set(id, readValue(entry, boundProp(entry)));
  }
  view.nodes = new Map();
  const entry = root ? build(view, root, null) : null;
  view.host.replaceChildren(...(entry && entry.outer ? [entry.outer] : []));
  for (const [id, owner] of owners) {
    const fresh = view.nodes.get(id);
    if (fresh && fresh.el) {
      fresh.owner = owner;
      if (typedValues.has(id)) setBoundValue(fresh.el, boundProp(fresh), typedValues.get(id));
      else if (fresh.server) applyBound(view, fresh, fresh.server.prop, fresh.server.value, commit);
    }
  }
  if (keep) {
    const fresh = view.nodes.get(focusedId);
    if (fresh && fresh.el) {
      setBoundValue(fresh.el, boundProp(keep), typed);
      fresh.el.focus();
      if (start !== null) try { fresh.el.setSelectionRange(start, end); } catch { /* not text */ }
    }
  }
  if (offline()) setButtonsDisabled(true);
}

function patch(view, ops, commit) {
  for (const op of ops) {
    const entry = view.nodes.get(op.node);
    switch (op.op) {
      case "text":
        if (entry && entry.text) entry.text.data = op.value;
        break;
      case "attr":
        if (!entry) break;
        if (op.name === "$on") entry.node.on = op.value;
        else {
          entry.node.props[op.name] = op.value;
          setProp(entry, op.name, op.value);
          if (entry.tag === "select" && op.name === "options") setOptions(entry.el, op.value);
        }
        break;
      case "bind":
        if (!entry) break;
        entry.node.bind = { ...(entry.node.bind || {}), [op.prop]: op.value };
        applyBound(view, entry, op.prop, op.value, commit);
        break;
      case "remove":
        removeNode(view, op.node);
        break;
      case "insert": {
        const parent = view.nodes.get(op.parent);
        if (!parent || !parent.box) break;
        const child = build(view, op.node, parent.node.tag);
        parent.children.splice(op.index, 0, op.node.id);
        placeChild(view, parent, child, op.index);
        if (parent.node.tag === "tabs") refreshTabs(view, parent);
        break;
      }
      case "move": {
        const parent = view.nodes.get(op.parent);
        if (!parent || !entry) break;
        parent.children = parent.children.filter((id) => id !== op.node);
        parent.children.splice(op.index, 0, op.node);
        placeChild(view, parent, entry, op.index);
        break;
      }
      default:
        break;
    }
  }
  if (offline()) setButtonsDisabled(true);
}

function placeChild(view, parent, child, index) {
  if (!child.outer) return;
  let before = null;
  for (const id of parent.children.slice(index + 1)) {
    const sibling = view.nodes.get(id);
    if (sibling && sibling.outer && sibling.outer.parentNode === parent.box) { before = sibling.outer; break; }
  }
  parent.box.insertBefore(child.outer, before);
}

function removeNode(view, id) {
  const entry = view.nodes.get(id);
  if (!entry) return;
  if (entry.outer) entry.outer.remove();
  if (entry.fieldError) entry.fieldError.remove();
  for (const key of Array.from(view.nodes.keys())) if (key === id || key.startsWith(`${id}.`)) view.nodes.delete(key);
  const parentId = id.slice(0, id.lastIndexOf("."));
  const parent = view.nodes.get(parentId);
  if (parent && parent.children) parent.children = parent.children.filter((c) => c !== id);
}

// --- acks and nacks ----------------------------------------------------------------

function settle(id) {
  const i = unacked.findIndex((f) => f.id === id);
  if (i >= 0) unacked.splice(i, 1);
  const owner = frameOwner.get(id);
  frameOwner.delete(id);
  return owner;
}

function onAck(frame) {
  if (pendingOpen.has(frame.id)) { pendingOpen.delete(frame.id); return; }
  const who = settle(frame.id);
  if (!who) return;
  const view = views.get(who.view);
  const entry = view && view.nodes.get(who.node);
  if (who.kind === "edit" && entry && entry.owner) {
    entry.owner.inflight.delete(frame.id);
    if (typeof frame.commit === "number") entry.owner.acked = Math.max(entry.owner.acked, frame.commit);
    clearFieldError(entry);
    const server = entry.server;
    // The value as of our commit or later (another user's, held back while we typed).
    if (server && !entry.owner.inflight.size && !entry.owner.pending && server.commit !== null && server.commit >= entry.owner.acked) {
      applyBound(view, entry, server.prop, server.value, server.commit);
    }
  }
  if (view) view.status.replaceChildren();
}

function onNack(frame) {
  if (pendingOpen.has(frame.id)) {
    const name = pendingOpen.get(frame.id);
    pendingOpen.delete(frame.id);
    const view = views.get(name);
    if (view) view.status.replaceChildren(el("p", { class: "cs-error", role: "alert" }, message(frame.error)));
    return;
  }
  const who = settle(frame.id);
  if (!who) return;
  const view = views.get(who.view);
  if (!view) return;
  const entry = view.nodes.get(who.node);
  if (who.kind === "edit" && entry && entry.owner) {
    entry.owner.inflight.delete(frame.id);
    // A value of the wrong type (an int input emptied, say) stays for the user to
    // correct, the message beside it, and what they typed since still goes; other
    // refusals (a derived cell) revert the field.
    entry.owner.refused = VALUE_REFUSALS.has(frame.error && frame.error.type);
    if (!entry.owner.refused) {
      if (entry.owner.pending) { clearTimeout(entry.owner.pending); entry.owner.pending = null; }
      if (entry.server) setBoundValue(entry.el, entry.server.prop, entry.server.value);
    }
    showFieldError(entry, message(frame.error));
  } else {
    view.status.replaceChildren(el("p", { class: "cs-error", role: "alert" }, message(frame.error)));
  }
}

function message(error) {
  if (!error || typeof error !== "object") return "The server refused this.";
  return `${error.type || "Error"}: ${error.message || "refused"}`;
}

function showFieldError(entry, text) {
  clearFieldError(entry);
  entry.el.setAttribute("aria-invalid", "true");
  entry.fieldError = el("span", { class: "cs-field-error", role: "alert" }, text);
  entry.el.after(entry.fieldError);
}

function clearFieldError(entry) {
  if (entry.fieldError) entry.fieldError.remove();
  entry.fieldError = null;
  if (entry.el) entry.el.removeAttribute("aria-invalid");
}

function showCharmError(view, error) {
  view.errorBox.replaceChildren();
  view.errorBox.hidden = error === null || error === undefined;
  if (view.errorBox.hidden) return;
  const text = typeof error === "object" && error
    ? [error.where, error.type, error.message].filter((x) => typeof x === "string").join(" — ")
    : String(error);
  view.errorBox.append(el("strong", {}, "The charm reported an error: "), document.createTextNode(text || JSON.stringify(error)));
}

function showJobs(view, jobs) {
  // A job's status cell: {status, progress}; progress is a fraction, a number of
  // percent, or {done, total}. Shown as a progress bar per job.
  view.jobsBox.replaceChildren();
  const entries = jobs && typeof jobs === "object" ? Object.entries(jobs) : [];
  view.jobsBox.hidden = entries.length === 0;
  for (const [name, job] of entries) {
    if (!job || typeof job !== "object") continue;
    const bar = el("progress", { "aria-label": `${name} progress` });
    const p = job.progress;
    if (p && typeof p === "object" && typeof p.done === "number" && typeof p.total === "number" && p.total > 0) {
      bar.max = p.total;
      bar.value = Math.min(p.done, p.total);
    } else if (typeof p === "number" && isFinite(p)) {
      bar.max = p > 1 ? 100 : 1;
      bar.value = p;
    } else if (job.status === "done") {
      bar.max = 1;
      bar.value = 1;
    }
    view.jobsBox.append(el("div", { class: "cs-job", "data-job": name, "data-status": String(job.status || "") },
      el("span", {}, `${name}: ${job.status || "?"}`), bar));
  }
}

// --- the socket: connect, reconnect, resend ----------------------------------------

function send(frame, durable) {
  if (durable) unacked.push(frame);
  if (socket && socket.readyState === WebSocket.OPEN && welcomed) socket.send(JSON.stringify(frame));
}

function offline() {
  return !document.getElementById("cs-offline").hidden;
}

function setButtonsDisabled(disabled) {
  for (const view of views.values()) {
    for (const b of view.host.querySelectorAll("button")) {
      if (disabled) {
        if (!b.disabled) { b.disabled = true; b.dataset.csOffline = ""; }
      } else if ("csOffline" in b.dataset) {
        b.disabled = false;
        delete b.dataset.csOffline;
      }
    }
  }
}

function setOffline(isOffline) {
  document.getElementById("cs-offline").hidden = !isOffline;
  setButtonsDisabled(isOffline);
}

function connect() {
  if (!views.size) return;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`;
  const ws = new WebSocket(url);
  socket = ws;
  welcomed = false;
  let opened = false;
  ws.addEventListener("open", () => {
    opened = true;
    everOpened = true;
    ws.send(JSON.stringify({ type: "hello", v: VERSION, tab, csrf: csrfToken() }));
  });
  ws.addEventListener("message", (message) => {
    let frame;
    try { frame = JSON.parse(message.data); } catch { return; }
    receive(ws, frame);
  });
  ws.addEventListener("close", () => {
    if (socket !== ws) return;
    socket = null;
    welcomed = false;
    if (!offlineTimer && offline() === false) offlineTimer = setTimeout(() => { offlineTimer = null; if (!welcomed) setOffline(true); }, OFFLINE_AFTER_MS);
    if (!opened) checkSession();
    attempt += 1;
    const backoff = Math.min(2000, 150 * 2 ** Math.min(attempt, 6));
    setTimeout(connect, backoff * (0.5 + Math.random()));
  });
}

async function checkSession() {
  // A refused upgrade does not say why; the session endpoint does. Sent to the login page once.
  try {
    const response = await fetch("/api/session", { credentials: "same-origin" });
    if ((response.status === 401 || response.status === 403) && !sessionStorage.getItem("cs-sent-to-login")) {
      sessionStorage.setItem("cs-sent-to-login", "1");
      location.assign("/login");
    }
  } catch { /* offline: keep trying */ }
}

let liveName = null; // {space, id, title}: the charm page's heading follows the charm's $NAME

function receive(ws, frame) {
  if (frame.op === "value" && frame.id === "cs-name" && liveName) {
    if (typeof frame.value === "string") liveName.title.replaceChildren(document.createTextNode(frame.value));
    return;
  }
  switch (frame.type) {
    case "welcome":
      welcomed = true;
      attempt = 0;
      sessionStorage.removeItem("cs-sent-to-login");
      clearTimeout(offlineTimer);
      offlineTimer = null;
      for (const view of views.values()) {
        const id = nextId();
        pendingOpen.set(id, view.name);
        ws.send(JSON.stringify({ type: "open", id, view: view.name, charm: view.charm }));
      }
      for (const f of unacked) ws.send(JSON.stringify(f)); // same ids: applied once
      if (liveName) {
        ws.send(JSON.stringify({ op: "subscribe", id: "cs-name", space: liveName.space, charm: liveName.id, path: ["$NAME"] }));
      }
      setOffline(false);
      break;
    case "mount": {
      const view = views.get(frame.view);
      if (view) mount(view, frame.root, frame.commit);
      break;
    }
    case "patch": {
      const view = views.get(frame.view);
      if (view) patch(view, frame.ops, frame.commit);
      break;
    }
    case "ack": onAck(frame); break;
    case "nack": onNack(frame); break;
    case "error": {
      const view = views.get(frame.view);
      if (view) showCharmError(view, frame.error);
      break;
    }
    case "jobs": {
      const view = views.get(frame.view);
      if (view) showJobs(view, frame.jobs);
      break;
    }
    case "bye":
      ws.close();
      break;
    default:
      break;
  }
}

function openView(name, charm, container) {
  const host = el("div", { class: "cs-view", "data-view": name });
  const errorBox = el("div", { class: "cs-charm-error", role: "alert", hidden: "" });
  const status = el("div", { class: "cs-status" });
  const jobsBox = el("div", { class: "cs-jobs", hidden: "" });
  container.append(errorBox, status, jobsBox, host);
  views.set(name, { name, charm, host, errorBox, status, jobsBox, nodes: new Map() });
  if (!socket) connect();
  else if (welcomed) {
    const id = nextId();
    pendingOpen.set(id, name);
    socket.send(JSON.stringify({ type: "open", id, view: name, charm }));
  }
}

// --- pages ---------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") headers["x-csrf-token"] = csrfToken();
  const response = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) { location.assign("/login"); throw new Error("logged out"); }
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(message(data && data.error));
  return data;
}

function section(title, ...children) {
  return el("section", { class: "cs-section" }, el("h2", {}, title), ...children);
}

function segment(text) {
  return encodeURIComponent(text).replace(/%3A/gi, ":"); // did:key:… reads as itself
}

function charmLink(space, id, label) {
  return el("a", { href: `/${segment(space)}/${segment(id)}` }, label);
}

function starButton(space, id, favorites, onChange) {
  const isFavorite = favorites.some((f) => f.space === space && f.id === id);
  const button = el("button", { class: "cs-star", type: "button", "aria-label": isFavorite ? "Unstar" : "Star", "aria-pressed": String(isFavorite) }, isFavorite ? "★" : "☆");
  button.addEventListener("click", async () => {
    if (isFavorite) await api("DELETE", `/api/favorites?space=${encodeURIComponent(space)}&id=${encodeURIComponent(id)}`);
    else await api("POST", "/api/favorites", { space, id });
    onChange();
  });
  return button;
}

async function charmItems(space, favorites, onChange) {
  let charms = [];
  try { charms = await api("GET", `/api/spaces/${encodeURIComponent(space)}/charms`); } catch { charms = []; }
  if (!charms.length) return el("p", { class: "cs-muted" }, "No charms yet.");
  const list = el("ul", { class: "cs-items" });
  for (const c of charms) {
    let name = `${c.pattern} ${c.id.slice(0, 8)}`;
    try {
      const info = await api("GET", `/api/spaces/${encodeURIComponent(space)}/charms/${encodeURIComponent(c.id)}`);
      if (typeof info.name === "string") name = info.name;
    } catch { /* listed anyway */ }
    list.append(el("li", { "data-charm": c.id }, starButton(space, c.id, favorites, onChange), charmLink(space, c.id, name), el("span", { class: "cs-muted" }, c.pattern)));
  }
  return list;
}

function inputFor(name, schema) {
  const type = schema && schema.type;
  const value = schema && schema.default;
  if (type === "boolean") {
    const input = el("input", { type: "checkbox", name });
    input.checked = Boolean(value);
    return input;
  }
  if (type === "integer" || type === "number") {
    const input = el("input", { type: "number", name, step: type === "integer" ? "1" : "any" });
    if (value !== undefined) input.value = String(value);
    return input;
  }
  if (type === "string") {
    const input = el("input", { type: "text", name });
    if (value !== undefined) input.value = String(value);
    return input;
  }
  const area = el("textarea", { name, rows: "3", placeholder: "JSON" });
  if (value !== undefined) area.value = JSON.stringify(value);
  return area;
}

function readInput(input, schema) {
  const type = schema && schema.type;
  if (type === "boolean") return input.checked;
  if (input.value === "") return undefined;
  if (type === "integer") return parseInt(input.value, 10);
  if (type === "number") return Number(input.value);
  if (type === "string") return input.value;
  return JSON.parse(input.value);
}

async function newCharmForm(space) {
  const patterns = await api("GET", "/api/patterns");
  const form = el("form", { class: "cs-form", id: "cs-new-charm" });
  const select = el("select", { name: "pattern", "aria-label": "Pattern" });
  for (const p of patterns) {
    const o = el("option", {}, p.description ? `${p.name} — ${p.description.split("\n")[0]}` : p.name);
    o.value = p.name;
    select.append(o);
  }
  const fields = el("div", { class: "cs-form" });
  const error = el("p", { class: "cs-error", role: "alert" });
  const showFields = () => {
    const pattern = patterns.find((p) => p.name === select.value);
    const properties = (pattern && pattern.inputs && pattern.inputs.properties) || {};
    fields.replaceChildren(...Object.entries(properties).map(([name, schema]) => el("label", {}, name, inputFor(name, schema))));
  };
  select.addEventListener("change", showFields);
  showFields();
  form.append(el("label", {}, "Pattern", select), fields, el("button", { type: "submit" }, "Create"), error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.replaceChildren();
    const pattern = patterns.find((p) => p.name === select.value);
    const properties = (pattern && pattern.inputs && pattern.inputs.properties) || {};
    const inputs = {};
    try {
      for (const [name, schema] of Object.entries(properties)) {
        const value = readInput(form.elements[name], schema);
        if (value !== undefined) inputs[name] = value;
      }
      const created = await api("POST", `/api/spaces/${encodeURIComponent(space)}/charms`, { pattern: select.value, inputs });
      location.assign(`/${segment(space)}/${segment(created.id)}`);
    } catch (e) {
      error.append(document.createTextNode(e.message));
    }
  });
  return form;
}

async function homePage(main, me) {
  const render = async () => {
    const favorites = await api("GET", "/api/favorites");
    const spaces = await api("GET", "/api/spaces");
    const favoriteList = favorites.length
      ? el("ul", { class: "cs-items", id: "cs-favorites" }, ...favorites.map((f) => el("li", { "data-charm": f.id }, starButton(f.space, f.id, favorites, render), charmLink(f.space, f.id, f.name || f.id))))
      : el("p", { class: "cs-muted", id: "cs-favorites" }, "Star a charm to keep it here.");
    const spaceList = el("ul", { class: "cs-items" }, ...spaces.map((s) => el("li", {}, el("a", { href: `/${segment(s.space)}` }, s.space === me ? `${s.space} (yours)` : s.space))));
    main.replaceChildren(
      section("Your charms", await charmItems(me, favorites, render)),
      section("Favorites", favoriteList),
      section("Spaces", spaces.length ? spaceList : el("p", { class: "cs-muted" }, "No spaces yet.")),
      section("New charm", await newCharmForm(me)),
    );
  };
  await render();
}

async function spacePage(main, space) {
  const render = async () => {
    const favorites = await api("GET", "/api/favorites");
    main.replaceChildren(section(`Space ${space}`, await charmItems(space, favorites, render)));
  };
  await render();
}

async function charmPage(main, space, id) {
  const title = el("h1", { id: "cs-charm-name" }, id);
  const header = el("div", { class: "cs-row" }, title);
  main.replaceChildren(header);
  try {
    const info = await api("GET", `/api/spaces/${encodeURIComponent(space)}/charms/${encodeURIComponent(id)}`);
    if (typeof info.name === "string") title.replaceChildren(document.createTextNode(info.name));
    const favorites = await api("GET", "/api/favorites");
    const refresh = () => charmPage(main, space, id);
    header.append(starButton(space, id, favorites, refresh));
  } catch (e) {
    main.append(el("p", { class: "cs-error", role: "alert" }, e.message));
    return;
  }
  liveName = { space, id, title };
  if (!views.has("main")) openView("main", { space, id }, main);
  else { const v = views.get("main"); main.append(v.errorBox, v.status, v.jobsBox, v.host); }
}

async function start() {
  const body = document.body;
  const banner = body.dataset.banner;
  if (banner) {
    const box = document.getElementById("cs-banner");
    box.append(document.createTextNode(banner));
    box.hidden = false;
  }
  window.charmspaceShell = { tab, loadedAt: Date.now() }; // tests check the page was never reloaded
  const page = body.dataset.page;
  const main = document.getElementById("cs-main");
  if (page === "login") {
    document.getElementById("cs-login").hidden = false;
    return;
  }
  const session = await api("GET", "/api/session");
  document.getElementById("cs-whoami").append(document.createTextNode(session.did));
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (page === "home") await homePage(main, session.did);
    else if (page === "space") await spacePage(main, parts[0]);
    else if (page === "charm") await charmPage(main, parts[0], parts[1]);
  } catch (e) {
    main.append(el("p", { class: "cs-error", role: "alert" }, e.message));
  }
}

start();
