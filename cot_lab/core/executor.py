"""Several sweep runs side by side on one machine: worker processes, each with its share of the CPU threads.

Why processes: tiny models are overhead-bound (Python, autograd and kernel launches per step), so a
second thread inside one run barely helps, while a second run on the other core does
(`benchmarks/sweep_parallel.py` measures it). Each worker trains with `cl.train` and writes to the
same SQLite run store (WAL serialises writers). The Stop button reaches the workers as SIGINT, so each
in-flight run is stored marked `interrupted`, exactly as in a one-at-a-time sweep.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time

from cot_lab.core.interrupts import check_stop


REPORT_EVERY_S = 0.5  # how often a worker tells the parent how far its run is


def _worker(tasks, results, corpus_name: str, fingerprint: str, store_root: str, threads: int, train_kwargs: dict,
            corpus_kwargs: dict | None = None):
    """Train (config dict, flops, batch size, [(job index, seed), ...]) tasks until a None arrives: one run,
    or the seeds of one point as one batched group (`train_many`).

    Reports ("step", job index, flops so far) while training, ("done", job index, run_id, from_store) per run,
    and ("error", message) once if something fails.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background parent may have ignored SIGINT
    parent = os.getppid()
    import torch

    torch.set_num_threads(threads)
    from cot_lab.core.callbacks import Callback
    from cot_lab.core.config import ModelConfig
    from cot_lab.data import load_corpus
    from cot_lab.core.runs import RunStore
    from cot_lab.core.training import train, train_many

    class Report(Callback):
        def __init__(self, index):
            self.index, self.told_at = index, 0.0

        def on_step(self, state):
            now = time.monotonic()
            if now - self.told_at >= REPORT_EVERY_S:
                self.told_at = now
                if os.getppid() != parent:  # the notebook's kernel died or restarted: stop as a Stop would
                    raise KeyboardInterrupt
                results.put(("step", self.index, state.flops))

    corpus = load_corpus(corpus_name, **(corpus_kwargs or {}))
    if corpus.fingerprint != fingerprint:
        results.put(("error", f"corpus {corpus_name!r} loads differently in a worker process; use workers=1"))
        return
    store = RunStore(store_root)
    while True:
        try:
            try:
                item = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:
                    results.cancel_join_thread()
                    return
                continue
            if item is None:
                return
            cfg, flops, batch_size, members, extra = item
            common = dict(flops=flops, batch_size=batch_size, store=store, progress=False, **train_kwargs, **extra)
            members = [(m[0], m[1], m[2] if len(m) > 2 else None) for m in members]  # (job, seed, lr or None)
            if len(members) == 1:
                (index, seed, lr), = members
                trained = [train(ModelConfig(**cfg), corpus, seed=seed, lr=lr, callbacks=[Report(index)], **common)]
            else:
                trained = train_many(ModelConfig(**cfg), corpus, seeds=[seed for _, seed, _ in members],
                                     lrs=[lr for _, _, lr in members], callbacks=[[Report(m[0])] for m in members],
                                     **common)
            for (index, _, _), run in zip(members, trained):
                results.put(("done", index, run.run_id, run.from_store))
            if any(run.status == "interrupted" for run in trained):
                if os.getppid() != parent:  # nobody reads the results any more: do not wait to flush them
                    results.cancel_join_thread()
                return
        except KeyboardInterrupt:  # between runs: nothing in flight
            return
        except Exception as error:  # reported to the parent, which raises it
            results.put(("error", f"{type(error).__name__}: {error}"))
            return


def run_parallel(tasks, corpus, store, workers: int, train_kwargs: dict, on_done, on_step=None, stop=None) -> bool:
    """Train `tasks` in `workers` processes; `on_done(job, run_id, from_store)` per finished run, `on_step(job,
    flops)` about twice a second per run in training. A task is (SweepPoint, [(job, seed), ...]): one run, or
    several seeds of the point trained as one batched group; a member may be (job, seed, lr) to set its learning
    rate, and a task may carry a third item, a dict of further `cl.train` arguments for all its members (beta2=).

    Returns True if the sweep was interrupted: KeyboardInterrupt in this process, or `stop` (an Event) set.
    Either way each worker gets a SIGINT, so its run in flight is stored marked "interrupted".
    """
    ctx = mp.get_context("spawn")  # fork would copy a live torch thread pool; spawn starts clean
    queue_in, results = ctx.Queue(), ctx.Queue()
    for point, members, *extra in tasks:
        queue_in.put((point.config.to_dict(), point.flops, point.batch_size, list(members), extra[0] if extra else {}))
    for _ in range(workers):
        queue_in.put(None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    # Local text whose licence was passed as an argument needs it again to load in a worker (it is refused
    # without one); the licence never changes the tokens, so the fingerprint check below still holds.
    corpus_kwargs = {"licence": corpus.licence} if getattr(corpus, "licence_source", None) == "argument" else {}
    procs = [ctx.Process(target=_worker, args=(queue_in, results, corpus.name, corpus.fingerprint, str(store.root),
                                               threads, train_kwargs, corpus_kwargs), daemon=True)
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    remaining, interrupted, error = sum(len(task[1]) for task in tasks), False, None

    def handle(message) -> None:
        nonlocal remaining, error
        if message[0] == "error":
            error = message[1]
        elif message[0] == "step":
            if on_step is not None:
                on_step(message[1], message[2])
        else:
            remaining -= 1
            on_done(*message[1:])

    try:
        while remaining and error is None:
            check_stop(stop)
            try:
                message = results.get(timeout=0.2)
            except queue.Empty:
                if not any(proc.is_alive() for proc in procs):
                    break
                continue
            handle(message)
    except KeyboardInterrupt:
        interrupted = True
        for proc in procs:  # each in-flight train() stores its run marked "interrupted", then the worker ends
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGINT)
        for proc in procs:
            proc.join(timeout=60)
        while True:  # runs that finished while we were stopping still count
            try:
                message = results.get_nowait()
            except queue.Empty:
                break
            if message[0] == "done":
                handle(message)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
    if error is not None:
        raise RuntimeError(f"a sweep worker failed: {error}")
    return interrupted


def default_workers() -> int:
    """Runs side by side for a sweep here: one per CPU core on a CPU-only machine, 1 with a GPU.

    Measured by benchmarks/sweep_parallel.py on an idle 2-core CPU: tiny models are overhead-bound, so two
    runs of one thread each finished a 10-run sweep 1.73x sooner than one run at a time on both cores.
    """
    import os

    from cot_lab.core.device import detect_device

    return max(1, os.cpu_count() or 1) if detect_device().type == "cpu" else 1
