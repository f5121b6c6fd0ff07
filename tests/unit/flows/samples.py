"""Flow documents shared by the flow tests (the FLOWS.md example, verbatim)."""

from __future__ import annotations

REMINDER_YAML = """\
id: reminder                 # [a-z0-9-]{1,64}
name: Appointment reminder
start: greet                 # the first node
vars: {attempts: 0}          # defaults, overridden by the call's "variables"
nodes:
  greet:
    type: say
    text: "Hello {{ vars.name }}. Press 1 to confirm, or 2 to cancel."
    next: ask
  ask:
    type: gather
    input: [dtmf, speech]    # either ends the gather
    numDigits: 1             # dtmf: stop after N digits (or finishOnKey)
    finishOnKey: "#"
    timeout: 5               # seconds of no input
    speechHints: [yes, no, confirm, cancel]
    saveAs: answer           # vars.answer = digits or transcript; vars.answer_kind = dtmf|speech|timeout
    next: route
  route:
    type: branch
    cases:
      - when: "vars.answer == '1' or 'confirm' in vars.answer"
        next: confirmed
      - when: "vars.answer == '2'"
        next: cancelled
    default: retry
  retry:
    type: set
    values: {attempts: "{{ vars.attempts + 1 }}"}
    next: retry-check
  retry-check:
    type: branch
    cases: [{when: "vars.attempts < 3", next: greet}]
    default: bye
  confirmed: {type: say, text: "Thank you, see you tomorrow.", next: bye}
  cancelled: {type: http, method: POST, url: "https://crm.example.com/cancel",
              json: {name: "{{ vars.name }}"}, saveAs: crm, timeout: 3, next: bye}
  bye: {type: hangup}
"""  # noqa: E501 - verbatim from FLOWS.md


def reminder_doc() -> dict:
    """The reminder flow as a fresh plain-data document (safe to mutate)."""
    return {
        "id": "reminder",
        "name": "Appointment reminder",
        "start": "greet",
        "vars": {"attempts": 0},
        "nodes": {
            "greet": {
                "type": "say",
                "text": "Hello {{ vars.name }}. Press 1 to confirm, or 2 to cancel.",
                "next": "ask",
            },
            "ask": {
                "type": "gather",
                "input": ["dtmf", "speech"],
                "numDigits": 1,
                "finishOnKey": "#",
                "timeout": 5,
                "speechHints": ["yes", "no", "confirm", "cancel"],
                "saveAs": "answer",
                "next": "route",
            },
            "route": {
                "type": "branch",
                "cases": [
                    {"when": "vars.answer == '1' or 'confirm' in vars.answer", "next": "confirmed"},
                    {"when": "vars.answer == '2'", "next": "cancelled"},
                ],
                "default": "retry",
            },
            "retry": {
                "type": "set",
                "values": {"attempts": "{{ vars.attempts + 1 }}"},
                "next": "retry-check",
            },
            "retry-check": {
                "type": "branch",
                "cases": [{"when": "vars.attempts < 3", "next": "greet"}],
                "default": "bye",
            },
            "confirmed": {"type": "say", "text": "Thank you, see you tomorrow.", "next": "bye"},
            "cancelled": {
                "type": "http",
                "method": "POST",
                "url": "https://crm.example.com/cancel",
                "json": {"name": "{{ vars.name }}"},
                "saveAs": "crm",
                "timeout": 3,
                "next": "bye",
            },
            "bye": {"type": "hangup"},
        },
    }
