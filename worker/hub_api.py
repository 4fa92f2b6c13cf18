"""The Hub's JSON API from the worker, by the rules of model_loader/hub.py: the commit a revision
names and the files a commit lists (with their sizes and hashes), both kept in the browser cache
so a model loads offline from the commit its revision named when last resolved."""
from __future__ import annotations

from model_loader.hub import (HubError, RemoteFile, TransientError, is_commit, next_page, parse_commit, parse_tree,
                              revision_url, tree_url)
from worker.cache import Cache
from worker.download import checked, request, retried


async def api_get(url: str, what: str) -> tuple[str, str | None]:
    """The text and Link header of a JSON API answer."""
    response = checked(await request(url), what)
    return await response.text(), response.headers.get("Link")


async def resolve_revision(endpoint: str, repo: str, revision: str, cache: Cache) -> str:
    """The commit a revision names (an API call, so a moved branch is never served stale from
    the cache); offline, the commit it named when last resolved."""
    if is_commit(revision):
        return revision
    what = f"{repo}@{revision}"
    try:
        commit = parse_commit((await retried(api_get, revision_url(endpoint, repo, revision), what))[0], what)
    except TransientError as e:
        if commit := await cache.ref(endpoint, repo, revision):
            return commit
        raise HubError(f"{e}, and {what} is not in the browser cache") from None
    await cache.set_ref(endpoint, repo, revision, commit)
    return commit


async def list_files(endpoint: str, repo: str, commit: str, cache: Cache) -> dict[str, RemoteFile]:
    """The commit's top-level files with their sizes and hashes: from the cache, else from the
    API (every page), then kept (a commit never changes)."""
    if (kept := await cache.listing(endpoint, repo, commit)) is not None:
        return kept
    what, files, url = f"{repo}: the file listing", {}, tree_url(endpoint, repo, commit)
    while url:
        text, link = await retried(api_get, url, what)
        files.update((f.name, f) for f in parse_tree(text, what))
        url = next_page(link)
    await cache.set_listing(endpoint, repo, commit, files)
    return files
