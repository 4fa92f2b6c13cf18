"""What the page's "Cached models" panel asks the worker (worker.py exports these): the models in
the browser cache and the storage they use, deleting one or all of them (stopping their
downloads first), and what loading a Hub model will cost. Arguments and results are JSON."""
from __future__ import annotations

import json

from model_loader.checkpoint import listed_weight_files
from model_loader.hub import check_repo_id
from pyscript.js_modules import idb
from worker.cache import Cache
from worker.checkpoint_files import hub_files
from worker.download import cancel_jobs
from worker.protocol import CachedModels, ErrorReply, ModelSize, encode


async def cache_models() -> str:
    """JSON {models: [{endpoint, repo, revision, files, bytes, partial}], storage: {usage,
    quota}, off: why the cache is unusable or null}."""
    cache = await Cache.open()
    models = await cache.models() if cache.usable else []
    storage = json.loads(await idb.estimate())
    return encode(CachedModels(models=models, storage=storage, off=cache.off))


async def cache_delete(model: str) -> str:
    """Delete one cached model, JSON {endpoint, repo, revision}, or every one for "{}";
    returns cache_models()."""
    wanted = json.loads(model)
    prefix = tuple(wanted[k] for k in ("endpoint", "repo", "revision")) if wanted else ()
    cancel_jobs(prefix)
    await (await Cache.open()).delete(prefix)
    return await cache_models()


async def model_size(model: str) -> str:
    """What loading a hub model, JSON {endpoint, repo, revision}, will cost: JSON {cached: true,
    bytes} when the browser cache holds its weights, else {cached: false, bytes: the weights'
    download size from the Hub's listing}; {error} when the Hub cannot be asked."""
    wanted = json.loads(model)
    cache = await Cache.open()
    try:
        source = await hub_files(wanted["endpoint"], check_repo_id(wanted["repo"]), wanted["revision"], cache)
    except OSError as e:
        return encode(ErrorReply(str(e)))
    names = listed_weight_files(source.listing)
    model = (source.endpoint, source.repo, source.commit)
    row = next((row for row in (await cache.models() if cache.usable else [])
                if (row["endpoint"], row["repo"], row["revision"]) == model), None)
    cached = bool(names) and row is not None and not row["partial"] and set(names) <= set(row["files"])
    return encode(ModelSize(cached=cached, bytes=sum(source.listing[name].size for name in names),
                            host=source.host))
