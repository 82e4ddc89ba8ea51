// Sign in and sign up (a new workspace and its owner).

import { signIn } from "../api.js";
import { busy, errorBox, field, h, mount } from "../ui.js";

export function render(main, { page, go }) {
  const signup = page === "signup";
  const errors = errorBox();
  const inputs = signup
    ? [
        field("Workspace name", h("input", { name: "tenantName", autocomplete: "organization", required: true, maxlength: 200 })),
        field("Your name", h("input", { name: "name", autocomplete: "name", maxlength: 200 })),
      ]
    : [];
  const form = h(
    "form",
    { class: "card auth-card", novalidate: false },
    h("h1", { tabindex: "-1" }, signup ? "Create your workspace" : "Sign in to OmniChat"),
    errors.el,
    inputs,
    field("Email", h("input", { name: "email", type: "email", autocomplete: "email", required: true })),
    field(
      "Password",
      h("input", { name: "password", type: "password", autocomplete: signup ? "new-password" : "current-password", required: true, minlength: signup ? 8 : undefined }),
      signup ? "At least 8 characters." : undefined,
    ),
    h("button", { type: "submit", class: "primary wide" }, signup ? "Create workspace" : "Sign in"),
    h(
      "p",
      { class: "switch" },
      signup ? "Already have an account? " : "New to OmniChat? ",
      h("a", { href: signup ? "#/signin" : "#/signup" }, signup ? "Sign in" : "Create a workspace"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.clear();
    const data = Object.fromEntries(new FormData(form));
    const body = signup
      ? { email: data.email, password: data.password, tenantName: data.tenantName, ...(data.name ? { name: data.name } : {}) }
      : { email: data.email, password: data.password };
    try {
      await busy(form, () => signIn(signup ? "/api/auth/register" : "/api/auth/login", body));
      go("/inbox");
    } catch (error) {
      errors.show(error);
      form.querySelector("input")?.focus();
    }
  });
  mount(main, h("div", { class: "auth-wrap" }, form));
}
