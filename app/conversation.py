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


def restored(value):
    """A stored conversation {"mode", "messages"} checked field by field; junk is dropped."""
    value = value if isinstance(value, dict) else {}
    messages = [m for m in value.get("messages", []) if isinstance(m, dict)
                and m.get("role") in ROLE_NAMES and isinstance(m.get("text"), str) and m.get("mode") in MODES]
    mode = value.get("mode") if value.get("mode") in MODES else None
    return {"mode": mode, "messages": messages}
