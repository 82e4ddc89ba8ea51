// Small DOM helpers: elements built in code (no HTML strings, so nothing a customer writes can
// become markup), labelled form fields, toasts, confirmations and formatting.

/** `h("button", {class: "x", onclick}, "Save")`: an element with attributes, listeners and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value" || key === "checked" || key === "selected" || key === "disabled") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let nextId = 0;
/** A unique id for label/input pairs. */
export const uid = (prefix = "f") => `${prefix}-${++nextId}`;

/**
 * A labelled field: `field("Name", h("input", {name: "name"}), "hint")`. The label is tied to the
 * control by id, and the hint by aria-describedby.
 */
export function field(label, control, hint) {
  const id = control.id || uid();
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: control.type === "checkbox" ? "field check" : "field" }, parts);
}

/** A checkbox with its label after it. */
export function checkbox(label, attrs = {}) {
  const id = attrs.id || uid();
  return h("div", { class: "field check" }, h("input", { type: "checkbox", id, ...attrs }), h("label", { for: id }, label));
}

/** A `<select>` from `[[value, label], ...]`. */
export function select(attrs, options, selected) {
  return h(
    "select",
    attrs,
    options.map(([value, label]) => h("option", { value, selected: String(value) === String(selected ?? "") }, label)),
  );
}

/** A form's values as an object (checkboxes as booleans, empty strings kept). */
export function formValues(form) {
  const values = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === "checkbox") {
      if (el.name.endsWith("[]")) {
        const key = el.name.slice(0, -2);
        values[key] = values[key] || [];
        if (el.checked) values[key].push(el.value);
      } else values[el.name] = el.checked;
    } else values[el.name] = el.value;
  }
  return values;
}

/** A message in the page's live region (`kind`: info, error). */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

/** An inline error area for a form: `show(error)` fills it, `clear()` empties it. */
export function errorBox() {
  const el = h("div", { class: "form-error", role: "alert", hidden: true });
  return {
    el,
    show(error) {
      el.hidden = false;
      mount(el, errorText(error));
    },
    clear() {
      el.hidden = true;
      el.replaceChildren();
    },
  };
}

export function errorText(error) {
  return error?.message || String(error);
}

/** A modal confirmation (`<dialog>`): resolves true when confirmed. */
export function confirmDialog(message, confirmLabel = "Confirm", danger = true) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "confirm-text" },
      h("form", { method: "dialog" },
        h("p", { id: "confirm-text" }, message),
        h("div", { class: "actions" },
          h("button", { value: "cancel", class: "secondary" }, "Cancel"),
          h("button", { value: "ok", class: danger ? "danger" : "primary" }, confirmLabel),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A dialog showing something once (a generated password): resolves when closed. */
export function infoDialog(title, ...body) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "info-title" },
      h("form", { method: "dialog" }, h("h2", { id: "info-title" }, title), body, h("div", { class: "actions" }, h("button", { class: "primary" }, "Done"))),
    );
    dialog.addEventListener("close", () => {
      resolve();
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A read-only value with a copy button. */
export function copyable(value, label) {
  const id = uid("copy");
  const input = h("input", { id, value, readonly: true, class: "mono", "aria-label": label });
  const button = h("button", {
    type: "button",
    class: "secondary",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(value);
      } catch {
        input.select();
        document.execCommand("copy");
      }
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    },
  }, "Copy");
  return h("div", { class: "copyable" }, input, button);
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${String(kind).toLowerCase()}` }, text);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

/** A time, short when it is today. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return (today ? timeFormat : dateFormat).format(date);
}

export function timeEl(iso) {
  return iso ? h("time", { datetime: iso, title: new Date(iso).toLocaleString() }, when(iso)) : "";
}

/** Disables a form's controls while `work` runs (no double submits). */
export async function busy(form, work) {
  const controls = [...form.querySelectorAll("button, input, select, textarea")].filter((c) => !c.disabled);
  controls.forEach((c) => (c.disabled = true));
  form.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    controls.forEach((c) => (c.disabled = false));
    form.removeAttribute("aria-busy");
  }
}

/** A page heading with optional actions on the right. */
export function pageHeader(title, ...actions) {
  return h("div", { class: "page-header" }, h("h1", { tabindex: "-1" }, title), h("div", { class: "actions" }, actions));
}

export const humanize = (value) => String(value ?? "").toLowerCase().replace(/_/g, " ");
