import { api, clearErrors, showErrors } from "./common.js";

const passwordForm = document.getElementById("password-form");
const codeForm = document.getElementById("code-form");

function done(form) {
  window.location.assign(form.dataset.next || "/console/");
}

passwordForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(passwordForm);
  const data = new FormData(passwordForm);
  try {
    const me = await api.post("/api/v1/auth/login", {
      email: data.get("email"),
      password: data.get("password"),
    });
    if (me.mfa_required) {
      passwordForm.hidden = true;
      codeForm.hidden = false;
      codeForm.querySelector("#code").focus();
    } else {
      done(passwordForm);
    }
  } catch (error) {
    showErrors(passwordForm, error);
  }
});

codeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(codeForm);
  try {
    await api.post("/api/v1/auth/mfa/verify", { code: new FormData(codeForm).get("code") });
    done(codeForm);
  } catch (error) {
    showErrors(codeForm, error);
  }
});
