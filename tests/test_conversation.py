"""The chat panel's conversation logic (app/conversation.py, run by MicroPython on the page)."""
from __future__ import annotations

import importlib.util
import json

import pytest

from support import ROOT

SPEC = importlib.util.spec_from_file_location("conversation", ROOT / "app" / "conversation.py")
conversation = importlib.util.module_from_spec(SPEC)  # a main-thread module, imported by file
SPEC.loader.exec_module(conversation)


def message(role: str, text: str, mode: str = "chat") -> dict:
    return {"role": role, "text": text, "mode": mode}


@pytest.mark.parametrize("repo, mode, style", [("microsoft/DialoGPT-small", "chat", "eot"),
                                               ("openai-community/gpt2", "completion", "transcript")])
def test_each_model_gets_its_mode_and_chat_style(repo, mode, style):
    assert conversation.default_mode(repo) == mode
    assert conversation.reply_request([message("user", "Hi")], repo)["style"] == style


def test_completion_continues_the_last_message_only():
    messages = [message("user", "Hi", "completion"), message("assistant", " there", "completion"),
                message("user", "Once upon", "completion")]
    assert conversation.reply_request(messages, "openai-community/gpt2") == {"prompt": "Once upon"}


def test_chat_turns_are_the_chat_messages_that_end_the_conversation():
    messages = [message("user", "old chat"), message("assistant", "old reply"),
                message("user", "a text", "completion"), message("assistant", " goes on", "completion"),
                message("user", "Hello"), message("assistant", "Hi!"), message("user", "How are you?")]
    assert conversation.reply_request(messages, "microsoft/DialoGPT-small") == {
        "turns": [["user", "Hello"], ["assistant", "Hi!"], ["user", "How are you?"]], "style": "eot"}
    assert conversation.last_user_index(messages) == 6
    assert conversation.last_user_index([]) == -1


def test_exports():
    messages = [message("user", "Hi <b>"), message("assistant", "Hello")]
    assert conversation.as_markdown(messages, "test/tiny") == (
        "# Conversation with test/tiny\n\n**You** (chat):\n\nHi <b>\n\n**GPT-2** (chat):\n\nHello\n")
    assert json.loads(conversation.as_json(messages, "test/tiny", {"seed": "1"})) == {
        "model": "test/tiny", "settings": {"seed": "1"}, "messages": messages}


def test_a_stored_conversation_is_checked_and_junk_marks_it_damaged():
    good = message("user", "Hi")
    restored = conversation.restored(json.dumps({"mode": "chat", "messages": [
        good, {"role": "system", "text": "x", "mode": "chat"}, {"role": "user", "text": 3, "mode": "chat"}, "junk"]}))
    assert restored == {"mode": "chat", "messages": [good], "damaged": True}
    assert conversation.restored(json.dumps({"mode": "chat", "messages": [good]})) == \
        {"mode": "chat", "messages": [good], "damaged": False}
    assert conversation.restored(None) == {"mode": None, "messages": [], "damaged": False}  # nothing kept
    for junk in ('["not", "a", "dict"]', '{"mode": "poetry"}', '{"messages": 5}', '{"messages": "Hi"}',
                 '{"mode": ["chat"]}', "{", "", "[" * 100_000 + "]" * 100_000):
        assert conversation.restored(junk) == {"mode": None, "messages": [], "damaged": True}, junk
