// Users: the list, inviting (the generated password is shown once), changing roles, removing.

import { api, current } from "../api.js";
import { busy, confirmDialog, copyable, errorBox, field, formValues, h, infoDialog, mount, pageHeader, select, timeEl, toast } from "../ui.js";

const ROLES = [
  ["agent", "Agent"],
  ["admin", "Admin"],
  ["owner", "Owner"],
];

export async function render(main, { canManage }) {
  const me = current()?.user;
  const iAmOwner = me?.role === "owner";
  const list = h("div", { class: "table-wrap" });
  const errors = errorBox();

  async function load() {
    const users = await api("GET", "/api/users");
    const rows = (users.data || users).map((user) => {
      const locked = !canManage || (user.role === "owner" && !iAmOwner);
      const roleSelect = select({ "aria-label": `Role of ${user.email}`, disabled: locked }, locked && user.role === "owner" ? [["owner", "Owner"]] : iAmOwner ? ROLES : ROLES.slice(0, 2), user.role);
      // Saved with its button, not on `change` (arrowing through a closed select fires it).
      const save = h("button", {
        type: "button",
        class: "secondary small",
        hidden: true,
        onclick: async () => {
          try {
            await api("PATCH", `/api/users/${user.id}`, { role: roleSelect.value });
            toast(`${user.email} is now ${roleSelect.value}`);
            user.role = roleSelect.value;
            save.hidden = true;
          } catch (error) {
            toast(error.message, "error");
            roleSelect.value = user.role;
            save.hidden = true;
          }
        },
      }, "Save role");
      roleSelect.addEventListener("change", () => (save.hidden = roleSelect.value === user.role));
      const remove = canManage && user.id !== me?.id && !(user.role === "owner" && !iAmOwner)
        ? h("button", {
            type: "button",
            class: "danger small",
            "aria-label": `Remove ${user.email}`,
            onclick: async () => {
              if (!(await confirmDialog(`Remove ${user.email}? Their sessions end at once.`, "Remove"))) return;
              try {
                await api("DELETE", `/api/users/${user.id}`);
                toast(`${user.email} removed`);
                load();
              } catch (error) {
                toast(error.message, "error");
              }
            },
          }, "Remove")
        : "";
      return h(
        "tr",
        { dataset: { userId: user.id } },
        h("td", {}, user.name || "—", user.id === me?.id ? h("small", { class: "muted" }, " (you)") : ""),
        h("td", {}, user.email),
        h("td", {}, h("div", { class: "actions" }, roleSelect, save)),
        h("td", {}, timeEl(user.createdAt)),
        h("td", {}, remove),
      );
    });
    mount(
      list,
      h(
        "table",
        { class: "table" },
        h("caption", { class: "sr-only" }, "Users of this workspace"),
        h("thead", {}, h("tr", {}, ["Name", "Email", "Role", "Added", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows),
      ),
    );
  }

  const invite = h(
    "form",
    { class: "card inline-form", "aria-labelledby": "invite-title" },
    h("h2", { id: "invite-title" }, "Invite a user"),
    errors.el,
    h(
      "div",
      { class: "row" },
      field("Email", h("input", { name: "email", type: "email", required: true, autocomplete: "off" })),
      field("Name", h("input", { name: "name", autocomplete: "off" })),
      field("Role", select({ name: "role" }, iAmOwner ? ROLES : ROLES.slice(0, 2), "agent")),
    ),
    h("button", { type: "submit", class: "primary" }, "Invite"),
  );
  invite.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.clear();
    const values = formValues(invite);
    const body = { email: values.email, role: values.role, ...(values.name ? { name: values.name } : {}) };
    try {
      const result = await busy(invite, () => api("POST", "/api/users", body));
      invite.reset();
      // The password first: it is shown only once, whatever happens to the list after.
      if (result.temporaryPassword) {
        await infoDialog(
          `${result.email || body.email} can sign in now`,
          h("p", {}, "Give them this password. It is shown only once."),
          copyable(result.temporaryPassword, "Temporary password"),
        );
      }
      await load().catch((error) => toast(error.message, "error"));
    } catch (error) {
      errors.show(error);
    }
  });

  mount(main, pageHeader("Users"), canManage ? invite : h("p", { class: "muted" }, "Only owners and admins manage users."), list);
  await load();
}
