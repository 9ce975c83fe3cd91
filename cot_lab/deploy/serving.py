"""Serve a registry's models over HTTP: FastAPI on uvicorn, in a background thread, on 127.0.0.1 only.

GET /health -> {"status": "ok", "version"}; GET /version -> {"alias", "version", "challenger", "canary", "shadow"};
POST /score {"text", "version"?} -> {"version", "route", "loss" (nats/token, mean over the tokens after the first),
"tokens"}; POST /generate {"text", "max_new_tokens"? (16), "version"?} -> {"version", "route", "text" (the greedy
continuation, decoded), "new_tokens", "ids", "tokens"}. Every answer names the model version that produced it
(also in the X-Model-Version header). The alias is resolved on every request, so a promotion or a rollback in
the registry takes effect at the next request, with no restart; "version": N pins a version (route "pinned").
canary: the share of requests sent to the challenger alias's version (route "canary", seeded draws); shadow: the
challenger also runs a copy of each champion request in the background, logged as route "shadow", never returned.

A refused request gets {"detail": message, "version", "route"} and the server keeps serving: 400 when the body
is not UTF-8 or not JSON (FastAPI would say 422 for bad JSON; 400 says the bytes, not a field, are wrong), 413
for more than 64 KiB of text, 404 for an unknown pinned version, 422 for a field failing the schema, empty text,
words outside the model's language, max_new_tokens < 1 or beyond the context, 503 when the alias is unset (the
body's checks are cot_lab.deploy.request_checks).
FastAPI and uvicorn (the `deploy` extra) are imported when a server is built, never on `import cot_lab`.
"""
# no `from __future__ import annotations` here: FastAPI reads the endpoints' annotations (Request) as objects
import errno
import os
import random
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from cot_lab.core import validate
from cot_lab.core.evaluate import sequence_losses
from cot_lab.deploy.request_checks import Rejected, parse_body, read_body
from cot_lab.deploy.request_log import SHADOW, RequestLog
from cot_lab.evaluation.memorisation import greedy_continuation

HOST = "127.0.0.1"  # the course's rule: servers listen on loopback only


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(f'serving models needs FastAPI and uvicorn ({error}): pip install "cot-lab[deploy]"') from None


@dataclass(frozen=True)
class Loaded:
    """One cached version: its registry record (ModelVersion), its model (CPU, eval mode), its language's corpus."""
    record: object
    model: torch.nn.Module
    corpus: object


class Router:
    """Where each request goes: the alias resolved at every request, the canary draw, pinned versions; the model
    cache (one load per version) and the shadow copies. Shared by the server's threads: the canary draws and the
    cache fill are locked; the registry is read from several threads at once (the kit's Registry allows it)."""

    def __init__(self, registry, alias: str, challenger: str | None, canary: float, shadow: bool,
                 log: RequestLog, seed: int):
        if not isinstance(alias, str) or not alias or not (challenger is None or isinstance(challenger, str)):
            raise ValueError(f"alias={alias!r} and challenger={challenger!r} must be registry alias names, e.g. "
                             "'champion' and 'challenger' (challenger may be None: no canary, no shadow)")
        self.registry, self.alias, self.challenger, self.log = registry, alias, challenger or None, log
        self.set_canary(canary)
        self.shadow = bool(shadow)
        self._rng = random.Random(validate.integer("seed", seed, low=0, hint="seeds the canary draws"))
        self._rng_lock, self._cache_lock = threading.Lock(), threading.Lock()
        self._cache: dict[int, Loaded] = {}
        # one worker: shadow copies queue behind each other instead of taking cores from answered requests
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cot-lab-shadow") if self.shadow else None

    def set_canary(self, fraction: float) -> None:
        self.canary = validate.number("canary", fraction, low=0.0, low_open=False, high=1.0,
                                      hint="the share of requests sent to the challenger, e.g. 0.1")

    def aliases(self, challenger: bool = True) -> tuple:
        """(champion's version, challenger's version) as the registry says now; None where an alias is unset (or
        the challenger's not asked for)."""
        champion = self.registry.alias(self.alias)
        return champion, (self.registry.alias(self.challenger) if self.challenger and challenger else None)

    def answer(self, endpoint: str, work, body, info: dict) -> dict:
        """work(the routed version, body), the version and route put in `info`; a shadow copy queued if asked."""
        version, route, shadow = self.route(body.version)
        info.update(version=version, route=route)
        result = self.run(work, version, body)
        if shadow is not None:
            self._pool.submit(self._shadow_copy, endpoint, work, shadow, body)
        return result

    def route(self, pinned: int | None) -> tuple:
        """(version to serve, route, version to shadow or None) for one request."""
        if pinned is not None:
            try:
                self.registry.get(pinned)
            except ValueError as error:
                raise Rejected(404, f"version={pinned} is not in the registry ({error}); leave \"version\" out to "
                                    f"be served the {self.alias!r} model") from None
            return pinned, "pinned", None
        # the challenger is looked up only when it can be used: one registry query per request, not two
        champion, challenger = self.aliases(challenger=self.canary > 0 or self.shadow)
        if champion is None:
            raise Rejected(503, f"no model version has the alias {self.alias!r}: set it in the registry (promote one)")
        other = challenger if challenger != champion else None  # a challenger equal to the champion is no canary
        if other is not None and self.canary > 0:
            with self._rng_lock:  # random.Random is not safe to draw from several threads at once
                to_canary = self._rng.random() < self.canary
            if to_canary:
                return other, "canary", None
        return champion, "champion", other if self.shadow else None

    def loaded(self, version: int) -> Loaded:
        """Version `version` from the cache, loaded from the registry (with its corpus) on first use."""
        hit = self._cache.get(version)
        if hit is not None:
            return hit
        from cot_lab.data import load_corpus

        with self._cache_lock:  # one load per version, however many requests ask for it at once
            if version not in self._cache:
                record, model = self.registry.load(version)
                self._cache[version] = Loaded(record, model.eval(), load_corpus(record.corpus))
            return self._cache[version]

    def run(self, work, version: int, body) -> dict:
        """work(the loaded version, body): the endpoint's result; Rejected (500) if the version does not load."""
        try:
            loaded = self.loaded(version)
        except Exception as error:  # noqa: BLE001 - whatever the registry raises, the client hears why
            raise Rejected(500, f"version {version} did not load: {type(error).__name__}: {error}") from None
        return work(loaded, body)

    def _shadow_copy(self, endpoint: str, work, version: int, body) -> None:
        """Run `work` on `version` (in the shadow thread) and log it as route "shadow"; its result is not returned."""
        start, result, status, message = time.perf_counter(), {}, 200, None
        try:
            result = self.run(work, version, body)
        except Exception as error:  # noqa: BLE001 - a failing shadow must not stop the next one
            refused = _refusal(error)
            status, message = refused.status, refused.message
        self.log.record(endpoint=endpoint, route=SHADOW, version=version, status=status, error=message,
                        latency_ms=1e3 * (time.perf_counter() - start), **_logged(result))

    def close(self) -> None:
        """Finish the queued shadow copies, so that the log is complete."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _refusal(error: Exception) -> Rejected:
    return error if isinstance(error, Rejected) else Rejected(500, f"internal error: {type(error).__name__}: {error}")


def _logged(result: dict) -> dict:
    return {k: result.get(k) for k in ("tokens", "new_tokens", "loss")}


def _encode(loaded: Loaded, text: str) -> list:
    if not hasattr(loaded.corpus, "encode"):
        raise Rejected(422, f"version {loaded.record.version}'s corpus {loaded.record.corpus!r} has no text encoder")
    try:
        return list(loaded.corpus.encode(text))
    except ValueError as error:  # words outside the language: the corpus's message says which
        raise Rejected(422, str(error)) from None


def score_text(loaded: Loaded, body) -> dict:
    """{"loss": mean nats/token over the text's tokens after the first, "tokens": tokens of the text}."""
    ids, context = _encode(loaded, body.text), int(loaded.model.config.max_position_embeddings)
    if len(ids) < 2:
        raise Rejected(422, f"text has {len(ids)} token; scoring needs at least 2 (each token after the first is "
                            "predicted from those before it)")
    if len(ids) > context + 1:
        raise Rejected(422, f"text has {len(ids)} tokens, more than the {context + 1} the model scores at once (its "
                            f"context of {context} positions plus the last target): send shorter text")
    losses = sequence_losses(loaded.model, torch.tensor([ids], dtype=torch.int64))  # [1, tokens - 1] nats
    return {"loss": float(losses.mean()), "tokens": len(ids)}


def generate_text(loaded: Loaded, body) -> dict:
    """{"text": the greedy continuation decoded, "new_tokens", "ids": its token ids, "tokens": the prompt's}."""
    ids, new = _encode(loaded, body.text), body.max_new_tokens
    context = int(loaded.model.config.max_position_embeddings)
    if len(ids) + new - 1 > context:  # the last step reads the prompt and all but the last new token
        fix = (f"ask for at most max_new_tokens={context + 1 - len(ids)}" if len(ids) <= context
               else f"shorten the text to at most {context} tokens")
        raise Rejected(422, f"text of {len(ids)} tokens + max_new_tokens={new} needs {len(ids) + new - 1} positions, "
                            f"more than the model's context of {context}: {fix}")
    out = greedy_continuation(loaded.model, torch.tensor([ids], dtype=torch.int64), new, batch_size=1)[0].tolist()
    return {"text": loaded.corpus.decode(out), "new_tokens": len(out), "ids": out, "tokens": len(ids)}


def build_app(registry, alias: str = "champion", *, challenger: str | None = "challenger", canary: float = 0.0,
              shadow: bool = False, log: RequestLog, seed: int = 0):
    """The FastAPI app serving `registry`'s `alias` (see the module docstring), logging to `log`; its Router is
    app.state.router (set_canary there changes the canary share live)."""
    _require("fastapi")
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    router = Router(registry, alias, challenger, canary, shadow, log, seed)
    app = FastAPI(title="cot-lab model server", description="Notebook 08's served model (cot_lab.deploy.serving).")
    app.state.router = router

    @app.middleware("http")
    async def log_every_request(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        info = getattr(request.state, "info", {})  # what the endpoint knew: version, route, tokens, loss, error
        if info.get("version") is not None:
            response.headers["X-Model-Version"] = str(info["version"])
        # latency inside the server, from the request's arrival to its response, in milliseconds
        log.record(endpoint=info.get("endpoint", request.url.path), status=response.status_code,
                   latency_ms=1e3 * (time.perf_counter() - start), route=info.get("route"),
                   version=info.get("version"), error=info.get("error"), **_logged(info))
        return response

    async def answer(request: Request, endpoint: str, work):
        info = request.state.info = {"endpoint": endpoint}
        try:
            body = parse_body(await read_body(request), endpoint)
            # the registry and the model run in a worker thread: the event loop keeps taking requests meanwhile
            result = await run_in_threadpool(router.answer, endpoint, work, body, info)
        except Exception as error:  # noqa: BLE001 - a bug in one request must not take the server down
            refused = _refusal(error)
            info["error"] = refused.message
            return JSONResponse({"detail": refused.message, "version": info.get("version"),
                                 "route": info.get("route")}, status_code=refused.status)
        info.update(_logged(result))
        return JSONResponse({"version": info["version"], "route": info["route"], **result})

    @app.get("/health")
    def health(request: Request):
        champion, _ = router.aliases()
        request.state.info = {"endpoint": "health", "version": champion}
        return JSONResponse({"status": "ok", "version": champion} if champion is not None else {
            "status": "no model", "version": None, "detail": f"no version has the alias {router.alias!r}"},
            status_code=200 if champion is not None else 503)

    @app.get("/version")
    def version(request: Request):
        champion, challenger = router.aliases()
        request.state.info = {"endpoint": "version", "version": champion}
        return {"alias": router.alias, "version": champion, "challenger": challenger, "canary": router.canary,
                "shadow": router.shadow}

    @app.post("/score")
    async def score(request: Request):
        return await answer(request, "score", score_text)

    @app.post("/generate")
    async def generate(request: Request):
        return await answer(request, "generate", generate_text)

    return app


def _bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port (0: a free port), handed to uvicorn: no gap between check and use."""
    # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on its connections (else Nagle's algorithm and delayed
    # ACKs add ~40 ms to every response); SO_REUSEADDR as uvicorn sets it: a stopped server's TIME_WAIT
    # connections do not keep the port
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ValueError(f"port={port} is in use; pass port=0 for a free one or stop the other server") from None
        raise ValueError(f"cannot listen on {HOST}:{port} ({error.strerror}); pass port=0 for a free one") from None
    return sock


def _default_log_path(registry) -> Path:
    """requests.sqlite in the registry's folder (its `root` or `path`, where it has one), else a new temp file."""
    for name in ("root", "path"):
        where = getattr(registry, name, None)
        if isinstance(where, (str, os.PathLike)) and Path(where).is_dir():
            return Path(where) / "requests.sqlite"
    handle, path = tempfile.mkstemp(prefix="cot-lab-requests-", suffix=".sqlite")
    os.close(handle)  # SQLite takes an empty file as an empty database
    return Path(path)


class Server:
    """A running model server (what `serve` returns): url, port, log, set_canary, stop; a context manager."""

    def __init__(self, uvicorn_server, sock: socket.socket, router: Router):
        self._server, self._sock, self.router, self.log = uvicorn_server, sock, router, router.log
        self.host, self.port = HOST, int(sock.getsockname()[1])
        self.url = f"http://{HOST}:{self.port}"
        self._stopped, self._stop_lock = False, threading.Lock()
        self._thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"cot-lab-serve-{self.port}")

    def start(self, timeout_s: float = 30.0) -> "Server":
        """Start uvicorn's thread and wait (up to timeout_s seconds) until it accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start within {timeout_s:g} s (uvicorn's "
                                   "messages above say why)")
            time.sleep(0.01)
        return self

    def set_canary(self, fraction: float) -> None:
        """Send `fraction` (in [0, 1]) of the following requests to the challenger alias's version."""
        self.router.set_canary(fraction)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    def stop(self) -> None:
        """Stop serving and free the port (idempotent); queued shadow copies are finished and logged first."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.should_exit = True  # uvicorn's main loop looks every 0.1 s, then drains open connections
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._sock.close()
        self.router.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"Server({self.url}, alias={self.router.alias!r}, canary={self.router.canary:g}, "
                f"{'running' if self.running else 'stopped'})")


def serve(registry, alias: str = "champion", *, port: int = 0, host: str = HOST, canary: float = 0.0,
          challenger: str | None = "challenger", shadow: bool = False, log_path=None, seed: int = 0) -> Server:
    """Serve `registry`'s `alias` at http://127.0.0.1:port from a background thread; the running Server.

    port=0 picks a free port (server.port says which). canary: the share of requests, in [0, 1], sent to the
    `challenger` alias's version (seeded by `seed`); shadow: the challenger also runs a copy of each champion
    request, logged, never returned. log_path: the SQLite request log (default: requests.sqlite in the registry's
    folder, else a temporary file). The champion and the challenger are loaded before the port is opened.
    Requests run in worker threads side by side; on a CPU, torch.set_num_threads(1) first lets them be the
    parallelism (several OpenMP threads per forward per request oversubscribe the cores).
    """
    uvicorn = _require("uvicorn")
    if host != HOST:
        raise ValueError(f"host={host!r} is refused: the course's servers bind to {HOST} only (loopback, reachable "
                         f"from this machine alone); pass host={HOST!r}")
    port = validate.integer("port", port, low=0, high=65535, hint="0 picks a free port")
    log = RequestLog(log_path if log_path is not None else _default_log_path(registry))
    try:
        app = build_app(registry, alias, challenger=challenger, canary=canary, shadow=shadow, log=log, seed=seed)
        router: Router = app.state.router
        champion, rival = router.aliases()
        if champion is None:
            raise ValueError(f"alias={alias!r} points to no version in the registry: promote one first")
        for version in (champion, rival):  # the first request should not wait for a load, nor find a broken model
            if version is not None:
                router.loaded(version)
        sock = _bind(port)
    except BaseException:
        log.close()
        raise
    config = uvicorn.Config(app, host=HOST, port=int(sock.getsockname()[1]), log_level="warning",
                            timeout_graceful_shutdown=5)
    return Server(uvicorn.Server(config), sock, router).start()


def serve_main(registry_path, alias: str = "champion", port: int = 8000, canary: float = 0.0) -> int:
    """`cot-lab serve`: serve the Registry at `registry_path` until Ctrl-C, then stop cleanly; returns 0."""
    from cot_lab.deploy.registry import Registry

    with serve(Registry(registry_path), alias, port=port, canary=canary) as server:
        champion, challenger = server.router.aliases()
        print(f"serving {alias!r} (version {champion}) at {server.url}"
              + (f", {canary:g} of requests to version {challenger}" if canary and challenger is not None else "")
              + f"; request log {server.log.path}; Ctrl-C stops", flush=True)
        try:
            while server.running:
                time.sleep(0.5)  # a sleeping main thread takes Ctrl-C at once
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0
