"""Loading a model in the worker: where its files come from (the hub through the browser
cache, or the visitor's disk), progress for the page, a memory check before the big download,
and the checkpoint read into a Model, or into one worker's shard of it."""
from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import js

from engine import ARCHITECTURES, Model, Shard, architecture_of
from model_loader.checkpoint import (TORCH_BIN, check_vocabulary, file_stream, read_checkpoint, read_tokenizer_files,
                                     weight_files)
from model_loader.config import parse_config
from model_loader.hub import check_repo_id
from model_loader.tokenizer import Tokenizer
from model_loader.weights import ParamsBuilder
from worker.browser_tokenizer import wasm_tokenizer
from worker.cache import Cache
from worker.checkpoint_files import LocalFiles, Source, fetch_checkpoint, hold_download_lock, hub_files
from worker.download import begin_load, keep_partials_of
from worker.kernels import hold_params, holds_embedding, kernels_of, uses_kernels, weight_holder
from worker.memory import MEMORY_LIMIT, refusal
from worker.protocol import ErrorReply, LoadReply, LoadRequest, Progress, Shards, Status
from worker.weight_stream import WeightStream

Push = Callable[[Progress | Status | Shards], None]  # sends an event to the page


class ModelTooBig(MemoryError):
    """The model cannot fit in the workers' memory; `workers`: a split over that many would."""

    def __init__(self, reason: str, workers: int | None = None):
        super().__init__(reason)
        self.workers = workers


def device_memory() -> float | None:
    """The device's memory in bytes as the browser reports it (navigator.deviceMemory: GiB,
    rounded, at most 8 in Chrome), or None where it does not."""
    gib = getattr(js.navigator, "deviceMemory", None)
    return gib * 2**30 if isinstance(gib, (int, float)) and gib > 0 else None


class LoadProgress:
    """Per-file byte counts and the download speed, pushed at most every 100 ms; the host the
    bytes come from is named when the endpoint is not the default Hub."""

    def __init__(self, push: Push):
        self.push, self.name_host = push, False
        self.files: dict[str, list[int]] = {}
        self.downloaded = 0  # bytes that came over the network, not from the cache
        self.first_byte = 0.0
        self.last = 0.0

    def update(self, name: str, received: int, total: int, where: str) -> None:
        cached = where == "cache"
        if not cached:
            self.first_byte = self.first_byte or time.monotonic()
            self.downloaded += max(received - self.files.get(name, [0])[0], 0)
        self.files[name] = [received, total]
        now = time.monotonic()
        if now - self.last > 0.1 or received == total:
            self.last = now
            self.push(Progress(file=name, files=self.files, cached=cached, speed=self.speed(now),
                               host=where if self.name_host and not cached else None))

    def speed(self, now: float) -> float:
        """Network bytes per second since the first one arrived."""
        return self.downloaded / (now - self.first_byte) if self.downloaded and now > self.first_byte else 0.0


def check_fits(label: str, raw_config: bytes, request: LoadRequest, n_shards: int, streams: bool) -> None:
    """Fail before the big download if a worker of n_shards cannot hold its part of the model
    (worker/memory.py), or this device all of it."""
    config = parse_config(raw_config, ARCHITECTURES)
    architecture = architecture_of(config)
    kernels, int8 = uses_kernels(request.kernels), request.weights == "int8"
    whole = 0 if streams else architecture.weight_bytes(config)
    problem = refusal(label, architecture, config, n_shards, kernels, int8, whole, device_memory(),
                      request.memory_limit or MEMORY_LIMIT)
    if problem:
        raise ModelTooBig(problem.reason, problem.workers)


async def model_source(request: LoadRequest, cache: Cache) -> tuple[Source, dict]:
    """Where to read the files from, and what to say about the model in the reply."""
    if request.local is not None:
        keep_partials_of(())
        return LocalFiles(request.local), {"repo": "local files", "commit": None, "host": None}
    source = await hub_files(request.endpoint, check_repo_id(request.repo or ""), request.revision, cache)
    keep_partials_of((source.endpoint, source.repo, source.commit))
    return source, {"repo": source.repo, "commit": source.commit, "host": source.host}


async def fetch_files(source: Source, cache: Cache, progress: LoadProgress, label: str, request: LoadRequest,
                      n_shards: int = 1, streams: bool = False) -> dict:
    """The checkpoint's files (see fetch_checkpoint), holding the model's download lock; the
    page is told when another tab is downloading the same model and this one waits for it.
    Refused before the weights if they cannot fit (check_fits)."""
    release = await hold_download_lock(
        source, lambda: progress.push(Status(f"Waiting for another tab that is downloading {label}…")))
    streamed = streams and (cache.usable or isinstance(source, LocalFiles))  # else read whole
    fits = lambda raw: check_fits(label, raw, request, n_shards, streamed)  # noqa: E731
    try:
        return await fetch_checkpoint(source, cache, progress.update, fits, streams)
    finally:
        release()


async def load_checkpoint(request: LoadRequest, push: Push, shard: tuple[int, int] | None = None
                          ) -> tuple[Model | ShardOfModel | None, LoadReply | ErrorReply]:
    """(model, facts) for a load request; (None, ErrorReply) on failure.
    With shard=(index, n_shards), only that shard of the model (read_shard), or the whole model
    where it cannot be split. The weights are read tensor by tensor from the cache (or the
    visitor's files) whenever they can be: only without a cache is a file held whole."""
    gc.collect()  # the previous model, dropped by the caller
    begin_load()
    started = time.monotonic()
    local = request.local is not None
    progress = LoadProgress(push)
    label = "the model from local files" if local else request.repo
    cache = Cache(off="local files are not cached") if local else await Cache.open()
    try:
        source, about = await model_source(request, cache)
        progress.name_host = source.host is not None
        if local or cache.usable or (shard is not None and shard[0] > 0):
            model = await read_shard(source, cache, progress, label, request, *(shard or (0, 1)), about["commit"])
        else:
            model = await read_model(source, cache, progress, label, request)
    except MemoryError as e:
        if isinstance(e, ModelTooBig):
            return None, ErrorReply(str(e), workers_needed=e.workers)
        return None, ErrorReply(f"{label} is too big for this device: the model worker ran out of memory")
    except (OSError, ValueError) as e:
        return None, ErrorReply(str(e))
    finally:
        gc.collect()
    if not local and (shard is None or shard[0] == 0):
        await cache.remember_reads(request.endpoint, request.repo, request.revision)
    kernels, weights = kernels_of(model.params)
    return model, LoadReply(
        **about, n_params=model.n_params, n_ctx=model.config.n_ctx, n_layer=model.config.n_layer,
        seconds=time.monotonic() - started, from_cache=not local and progress.downloaded == 0,
        downloaded=progress.downloaded, not_cached=None if local else cache.off, kernels=kernels, weights=weights)


async def read_model(source: Source, cache: Cache, progress: LoadProgress, label: str, request: LoadRequest,
                     have: dict | None = None) -> Model:
    """The whole model (`have`: the files fetched already, as bytes or WeightStreams)."""
    have = have or await fetch_files(source, cache, progress, label, request)
    have = {name: await data.whole() if isinstance(data, WeightStream) else data for name, data in have.items()}
    progress.push(Status("Building the model…"))
    tokenizer = await wasm_tokenizer(read_tokenizer_files(have), request.tiktoken)
    hold = await weight_holder(request.kernels, request.weights)
    config, params, tokenizer = read_checkpoint(have, ARCHITECTURES, tokenizer)
    return Model(config, hold_params(params, architecture_of(config), hold), tokenizer, hold and hold.cache)


async def lead_tokenizer(have: dict, request: LoadRequest, config) -> Tokenizer | Exception:
    """The tokenizer of the checkpoint's files, checked against the model's vocabulary; or the
    error that stopped it, returned rather than raised: it is made by a task beside the read of
    the weights, and Pyodide's event loop reports the error of a task as unhandled as soon as
    the task ends."""
    try:
        tokenizer = await wasm_tokenizer(read_tokenizer_files(have), request.tiktoken)
        check_vocabulary(tokenizer, config)
        return tokenizer
    except Exception as e:  # raised again by the load, which awaits it
        return e


def raised(outcome):
    """An outcome (lead_tokenizer's), unless it is an error: that is raised."""
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@dataclass
class ShardOfModel:
    """One worker's shard (shard `index` of n_shards), and the tokenizer (the lead's only)."""

    shard: Shard
    tokenizer: Tokenizer | None
    index: int
    n_shards: int

    @property
    def config(self):
        return self.shard.config

    @property
    def params(self):
        return self.shard.params

    @property
    def n_params(self) -> int:
        """The whole model's parameters (with a tied LM head counted once)."""
        return self.shard.architecture.param_count(self.config)


async def read_shard(source: Source, cache: Cache, progress: LoadProgress, label: str, request: LoadRequest,
                     index: int, n_shards: int, commit: str | None) -> ShardOfModel | Model:
    """Shard `index` of n_shards (at most one per head), read tensor by tensor from the cache
    (or the visitor's files) so the worker never holds more than its slice and one tensor (the
    blocks' matrices go to the kernels as they come). One shard is the whole Model. The lead
    reads the file whole instead if it is a .bin, or if the browser cache failed (the other
    workers would have to download it again); the others are only asked once the lead has
    split it."""
    have = await fetch_files(source, cache, progress, label, request, n_shards, streams=True)
    config = parse_config(bytes(have["config.json"]), ARCHITECTURES)
    architecture = architecture_of(config)
    n_shards = min(n_shards, architecture.max_shards(config))
    names = weight_files(have)
    if index == 0 and (names == [TORCH_BIN] or not (cache.usable or request.local is not None)):
        return await read_model(source, cache, progress, label, request, have)
    if index == 0 and n_shards > 1:
        progress.push(Shards(n_shards, commit))  # the files are cached: the others may start
    hold = await weight_holder(request.kernels, request.weights)  # the block matrices go to the kernels as they come
    keep = architecture.ShardSlicer(config, index, n_shards, hold, holds_embedding(hold))
    builder = ParamsBuilder(architecture, config, keep)
    # the lead's tokenizer is made while the weights are read: whenever a chunk is awaited
    making_tokenizer = asyncio.ensure_future(lead_tokenizer(have, request, config)) if index == 0 else None
    for name, weights in [(name, have.pop(name)) for name in names]:
        stream = file_stream(builder, weights.size, name)
        async for block in weights.blocks():
            if making_tokenizer and making_tokenizer.done():
                raised(making_tokenizer.result())  # a tokenizer that failed fails the load now
            stream.feed(block)
        stream.finish()
    tokenizer = raised(await making_tokenizer) if making_tokenizer else None
    params = hold_params(builder.finish(), architecture, hold)
    new_cache = hold and hold.cache  # the KV cache in the kernels' memory too
    if n_shards == 1:
        return Model(config, params, tokenizer, new_cache)
    return ShardOfModel(Shard(config, params, new_cache), tokenizer, index, n_shards)
