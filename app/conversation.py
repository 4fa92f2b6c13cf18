"""A conversation as plain data: its messages, the prompt each reply needs, and its exports.
Pure Python that runs in MicroPython (the page) and CPython (the tests); no DOM here.

A message is {"role": "user" | "assistant", "text": str, "mode": "completion" | "chat"}."""
import json

MODES = ("completion", "chat")
ROLE_NAMES = {"user": "You", "assistant": "GPT-2"}


def default_mode(repo):
    """Chat for chat-tuned models (DialoGPT), completion for the others."""
    return "chat" if "dialogpt" in repo.lower() else "completion"


def chat_style(repo):
    """Chat-tuned GPT-2s (DialoGPT) join turns with <|endoftext|>; others read a transcript."""
    return "eot" if "dialogpt" in repo.lower() else "transcript"


def reply_request(messages, repo):
    """The worker's `start` request for a reply to the last message (a user message): its text
    to continue in completion mode; in chat mode, the turns of the chat-mode messages that end
    the conversation, in the model's chat style."""
    last = messages[-1]
    if last["mode"] != "chat":
        return {"prompt": last["text"]}
    first = len(messages)
    while first > 0 and messages[first - 1]["mode"] == "chat":
        first -= 1
    turns = [[m["role"], m["text"]] for m in messages[first:]]
    return {"turns": turns, "style": chat_style(repo)}


def last_user_index(messages):
    """Index of the last user message, or -1."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "user":
            return index
    return -1


def as_markdown(messages, model):
    """The conversation as a Markdown document."""
    lines = ["# Conversation with " + (model or "GPT-2"), ""]
    for message in messages:
        lines += ["**" + ROLE_NAMES[message["role"]] + "** (" + message["mode"] + "):", "", message["text"], ""]
    return "\n".join(lines)


def as_json(messages, model, settings):
    """The conversation as JSON: the model, the generation settings and the messages."""
    return json.dumps({"model": model, "settings": settings, "messages": messages})


def restored(text):
    """A stored conversation (the JSON text kept in localStorage, or None) checked field by
    field: {"mode", "messages", "damaged"}. Junk is dropped; "damaged" says whether there was any
    (text that is not JSON, messages that are not a list, a message or mode of no known kind)."""
    try:
        value = {} if text is None else json.loads(text)
    except Exception:  # not JSON (an edited or cut value), or nested too deep
        value = None
    value = value if isinstance(value, dict) else {"messages": None}
    stored = value.get("messages", [])
    stored = stored if isinstance(stored, list) else [None]
    messages = [m for m in stored if isinstance(m, dict) and m.get("role") in ROLE_NAMES
                and isinstance(m.get("text"), str) and m.get("mode") in MODES]
    mode = value.get("mode") if value.get("mode") in MODES else None
    damaged = len(messages) != len(stored) or value.get("mode") not in (None,) + MODES
    return {"mode": mode, "messages": messages, "damaged": damaged}
