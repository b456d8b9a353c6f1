"""Input of the console's own endpoints (the pages' other forms talk to the REST API)."""

from __future__ import annotations

from django import forms

from lumina.providers.api import Strategy

ROLES = ("system", "user", "assistant")


class ChatForm(forms.Form):
    """One playground turn: the conversation so far, the model, and how to pick a provider."""

    model = forms.CharField(max_length=200)
    strategy = forms.ChoiceField(choices=[(s.value, s.value) for s in Strategy], required=False)
    messages = forms.JSONField()
    max_tokens = forms.IntegerField(min_value=1, max_value=32_000, required=False)

    def clean_messages(self) -> list[dict[str, str]]:
        messages = self.cleaned_data["messages"]
        if not isinstance(messages, list) or not messages or len(messages) > 200:
            raise forms.ValidationError("A list of 1 to 200 messages.", code="invalid")
        for message in messages:
            if (
                not isinstance(message, dict)
                or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)
                or set(message) - {"role", "content"}
            ):
                raise forms.ValidationError(
                    'Each message is {"role": "system"|"user"|"assistant", "content": text}.',
                    code="invalid",
                )
        last = messages[-1]
        if last["role"] != "user" or not last["content"].strip():
            raise forms.ValidationError("Write a message first.", code="required")
        return messages


class DashboardFilters(forms.Form):
    """The dashboard's period (a GET form: it works without JavaScript too)."""

    days = forms.TypedChoiceField(
        choices=[(7, "Last 7 days"), (30, "Last 30 days"), (90, "Last 90 days")],
        coerce=int,
        required=False,
    )
