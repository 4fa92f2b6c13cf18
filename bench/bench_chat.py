"""Chat benchmark: time to first token, turn after turn, as the chat page shows it.

    python bench/bench_chat.py [--model bench/models/gpt2-random] [--turns 5] [--workers 1]
                               [--compare OTHER_CHECKOUT ...]

Serves the app (tools/serve.py) and the GPT-2-small-shaped random checkpoint from a local Hub,
opens the page in chat mode and sends --turns messages of ~40 tokens; each reply is up to 40
tokens. For every turn it times what the visitor waits for: from the Send click to the first
token of the reply in the page (a MutationObserver in the page), and reads how many prompt
tokens the page says it kept from the last reply. --compare serves other checkouts (e.g. a
`git worktree` of an older commit) the same way, one after the other in the same run, so the
figures are comparable. Prints a table and writes bench/out/chat-<workers>.json.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_native import cpu_model  # noqa: E402
from tools.browser import REPLY_DONE, launch  # noqa: E402
from tools.hub_server import HubServer  # noqa: E402
from tools.serve import AppServer  # noqa: E402

REPO = "bench/gpt2-random"
MESSAGE = ("Tell me about the old lighthouse on the northern cape, who kept it through the long winter "
           "storms, and what the ships saw when its lamp")  # about 40 GPT-2 tokens
TIMEOUT_MS = 600_000

# In the page: click Send and resolve with the ms until the reply's first token is in the DOM.
SEND_AND_TIME_FIRST_TOKEN = """
() => new Promise(resolve => {
  const log = document.getElementById('log');
  const before = log.querySelectorAll('article.assistant').length;
  const t0 = performance.now();
  const observer = new MutationObserver(() => {
    const reply = log.querySelectorAll('article.assistant')[before];
    if (reply && reply.querySelector('.text span')) { observer.disconnect(); resolve(performance.now() - t0); }
  });
  observer.observe(log, { childList: true, subtree: true });
  document.getElementById('send').click();
})
"""


def chat_turns(browser, root: Path, model: Path, turns: int, workers: int) -> list[dict]:
    """One checkout's page: a chat of `turns` turns; per turn the ms to the first token and the
    stats line's prompt tokens and kept tokens."""
    with AppServer(root) as app, HubServer({REPO: {"main": model}}) as hub:
        page = browser.new_context().new_page()
        page.set_default_timeout(TIMEOUT_MS)
        url = f"{app.url}/?" + urlencode({"model": REPO, "endpoint": hub.url, "temperature": 0, "max_new_tokens": 40,
                                          "workers": workers})
        page.goto(url)
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Ready')",
                               timeout=TIMEOUT_MS)
        page.select_option("#mode", "chat")
        rows = []
        for turn in range(1, turns + 1):
            page.fill("#message", f"{MESSAGE} ({turn})")
            first_ms = page.evaluate(SEND_AND_TIME_FIRST_TOKEN)
            page.wait_for_function(REPLY_DONE, timeout=TIMEOUT_MS)
            stats = page.text_content("#stats")
            kept = re.search(r"\((\d+) kept", stats)
            rows.append({"turn": turn, "first_token_ms": first_ms, "prompt_tokens": int(stats.split()[0]),
                         "kept": int(kept[1]) if kept else None})
            print(f"  {root.name} turn {turn}: first token {first_ms:.0f} ms, {stats}", file=sys.stderr)
        page.context.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "bench" / "models" / "gpt2-random")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other checkouts to time the same way")
    args = parser.parse_args()
    roots = [ROOT, *args.compare]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        results = {str(root): chat_turns(browser, root, args.model, args.turns, args.workers) for root in roots}
        browser.close()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"chat-{args.workers}.json").write_text(json.dumps({"cpu": cpu_model(), "results": results}, indent=2))
    print(f"\nCPU: {cpu_model()}, {args.workers} worker(s); ms from Send to the reply's first token")
    print("| turn | prompt tokens | " + " | ".join(f"{Path(r).name}: first token (kept)" for r in results) + " |")
    print("| --- | --- |" + " --- |" * len(results))
    for i in range(args.turns):
        cells = [f"{rows[i]['first_token_ms']:.0f} ms ({rows[i]['kept'] if rows[i]['kept'] is not None else '-'})"
                 for rows in results.values()]
        print(f"| {i + 1} | {results[str(ROOT)][i]['prompt_tokens']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
