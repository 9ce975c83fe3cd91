"""A model registry for notebook 08: MLflow's, on a local SQLite file, in-process (no server).

    reg = Registry("~/cot-lab-registry")                      # path/mlflow.db, path/artifacts/, path/aliases.sqlite
    mv = reg.register(run, corpus="synthetic-v3", evaluation=report, datasheet=sheet)   # version 1, 2, ...
    reg.promote(1)                                            # the first champion needs no gate
    reg.promote(2, gate=cl.evaluation_gate(champion, candidate, slices))   # refused unless the gate passed
    reg.rollback()                                            # champion back to the version before the last move
    mv, model = reg.load("champion")                          # or reg.load(2): sha256-checked, CPU, eval mode

Versions are MLflow's numbered model versions of one registered model (`name`); aliases are MLflow's aliases
(stages are deprecated since MLflow 2.9), so `models:/<name>@champion` names the same version in MLflow's UI.
Weights are the kit's one model file (safetensors, `cot_lab.core.checkpoint`), never pickled, never an MLflow
flavour. Lineage is recorded as version tags and run params: the cot_lab run id, the config hash and JSON, the
corpus name and fingerprint, the file's sha256, the final validation loss (nats/token).

Crash safety: a registration writes the file to a temporary name and renames it into the run's artifacts, then
creates the model version with its lineage tags, and sets the tag `cot_lab.complete = "true"` as its very last
step. A version without that tag (its process was killed mid-registration) is never listed, loaded or
promoted; `incomplete_versions()` lists them. Test hook: when the environment variable COT_LAB_REGISTRY_KILL_AT
is "after_artifact" or "after_version", `register` kills its own process (os._exit(137)) right after that step.

Alias moves are serialised by a lock on path/aliases.sqlite, which also keeps their history (from, to, time,
reason), so rollback knows where an alias was before; MLflow's alias is the truth, the history its log (a process
killed in the milliseconds between the two leaves a move unlogged). Reading an alias is one indexed MLflow query
(about 2 ms); reads from other threads and processes run alongside a move and see the alias before or after it.
Reads run without `quiet_mlflow` (it changes logger levels, which is not safe to do from several threads at once);
only opening a registry and registering, where MLflow is noisy, are quieted.
"""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from cot_lab.core import validate
from cot_lab.core.checkpoint import load_model, save_model
from cot_lab.core.io import write_json, write_text
from cot_lab.core.results import sha256_file
from cot_lab.core.runs import now_iso
from cot_lab.deploy.lineage import TAG, DeployExtraMissing, Lineage, ModelVersion, quiet_mlflow, require_mlflow

__all__ = ["Registry", "ModelVersion", "DeployExtraMissing", "KILL_ENV", "KILL_STEPS"]

KILL_ENV = "COT_LAB_REGISTRY_KILL_AT"          # the test hook's environment variable (see the module's docstring)
KILL_STEPS = ("after_artifact", "after_version")
COMPLETE = TAG + "complete"                    # the version tag set last: a version without it is never served
MODEL_FILE = "model.safetensors"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,254}")
_RESERVED = re.compile(r"latest|v\d+", re.IGNORECASE)  # MLflow reserves these alias names
_ANY = object()


def _die_if(step: str) -> None:
    # The crash-safety test's hook: die as abruptly as a SIGKILL would, with no cleanup and no atexit handlers.
    if os.environ.get(KILL_ENV) == step:
        os._exit(137)


def _local_path(uri: str) -> Path:
    """The local path of a file:// URI (the run artifact URIs of this registry)."""
    parsed = urlparse(uri)
    return Path(url2pathname(parsed.path)) if parsed.scheme == "file" else Path(uri)


def _alias_name(arg: str, value) -> str:
    if not isinstance(value, str) or not _ALIAS.fullmatch(value) or _RESERVED.fullmatch(value):
        raise ValueError(f"{arg}={value!r} must be an alias name: letters, digits, _ and -, starting with a letter, "
                         "not 'latest' or 'v<number>' (MLflow reserves those), e.g. 'champion' or 'challenger'")
    return value


class Registry:
    """MLflow's model registry in folder `path` for the registered model `name`; see the module's docstring.

    The folder is created if missing and holds mlflow.db (tracking and registry, SQLite), artifacts/ (one MLflow
    run per registration, its model.safetensors under model/) and aliases.sqlite (the alias history). Opening the
    same folder again, from any process, finds everything. Each Registry has its own MlflowClient (`client`):
    nothing sets MLflow's global tracking URI.
    """

    def __init__(self, path: str | os.PathLike, name: str = "cot-lab"):
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValueError(f"path={path!r} must be a folder path (created if missing), e.g. 'registry'")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"name={name!r} must be a registered model name: letters, digits, '.', '_' and '-', "
                             "e.g. 'cot-lab'")
        root = Path(path).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ValueError(f"path={str(root)!r} is a file; a registry needs a folder (created if missing)")
        require_mlflow()
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.root, self.name = root, name
        (root / "artifacts").mkdir(parents=True, exist_ok=True)
        self.tracking_uri = f"sqlite:///{root}/mlflow.db"
        self._history_path = root / "aliases.sqlite"
        with quiet_mlflow():
            self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            experiment = f"cot-lab-registry/{name}"
            for attempt in range(2):  # another process may create them between our look and our create
                try:
                    found = self.client.get_experiment_by_name(experiment)
                    self._experiment_id = found.experiment_id if found else self.client.create_experiment(
                        experiment, artifact_location=(root / "artifacts").as_uri())
                    try:
                        self.client.get_registered_model(name)
                    except MlflowException:
                        self.client.create_registered_model(name, description="cot-lab models (notebook 08)")
                    break
                except MlflowException:
                    if attempt:
                        raise
        with self._history() as con:
            con.execute("PRAGMA journal_mode=WAL")  # readers of the history never wait for a move
            con.execute("CREATE TABLE IF NOT EXISTS moves (id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, "
                        "alias TEXT NOT NULL, from_version INTEGER, to_version INTEGER NOT NULL, at TEXT NOT NULL, "
                        "reason TEXT NOT NULL)")
            con.execute("CREATE INDEX IF NOT EXISTS moves_by_alias ON moves(model, alias, id)")

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r}, name={self.name!r}, versions {self._numbers()}, aliases {self.aliases()})"

    @contextlib.contextmanager
    def _history(self):
        # A connection per call: well under a millisecond to open, and safe from any thread or process.
        con = sqlite3.connect(self._history_path, timeout=60.0, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=60000")
            yield con
        finally:
            con.close()

    # -- versions ------------------------------------------------------------------------------------------------

    def register(self, source, *, corpus, evaluation=None, datasheet=None, description: str = "") -> ModelVersion:
        """Register a model as the next version number; returns it, complete.

        source: a cl.Run whose weights load (run.load_model()) or a model (cl.build_model, cl.load_model);
        corpus: the cl.Corpus the model reads, or its name (loaded here to fingerprint it): serving loads it by name
        to encode text; evaluation: a GateReport or a JSON-able dict; datasheet: a Datasheet or Markdown text.
        """
        lineage = Lineage.of(source, corpus, evaluation, datasheet, description)
        with quiet_mlflow():
            run = self.client.create_run(self._experiment_id, tags={"mlflow.runName": f"register {lineage.run_id}",
                                                                    TAG + "run_id": str(lineage.run_id)})
            try:
                folder = _local_path(run.info.artifact_uri) / "model"
                # save_model writes a temporary file next to the target and renames it: never a half-written file
                meta = {"run_id": lineage.run_id, "corpus": lineage.corpus,
                        "corpus_fingerprint": lineage.corpus_fingerprint}
                path = save_model(lineage.model, folder / MODEL_FILE,
                                  metadata={TAG + k: v for k, v in meta.items() if v is not None})
                if lineage.evaluation is not None:
                    write_json(folder / "evaluation.json", lineage.evaluation)
                if lineage.datasheet is not None:
                    write_text(folder / "datasheet.md", lineage.datasheet)
                tags = lineage.tags(sha256_file(path), path.relative_to(self.root).as_posix(), now_iso())
                _die_if("after_artifact")
                self._log_params(run.info.run_id, tags)
                mv = self.client.create_model_version(self.name, source=f"{run.info.artifact_uri}/model",
                                                      run_id=run.info.run_id, tags=tags, description=description)
                _die_if("after_version")
                self.client.set_terminated(run.info.run_id, "FINISHED")
            except BaseException:
                self.client.set_terminated(run.info.run_id, "FAILED")
                raise
            # the very last step: until this tag is there, the version is never listed, loaded or promoted
            self.client.set_model_version_tag(self.name, mv.version, COMPLETE, "true")
        return self.get(int(mv.version))

    def _log_params(self, run_id: str, tags: dict) -> None:
        from mlflow.entities import Param

        # the same lineage as the run's params, so MLflow's run view shows it; the config JSON is well under
        # MLflow's 6000-character limit for a param
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in tags.items() if v])

    def _mlflow_versions(self) -> list:
        out, token = [], None
        while True:
            page = self.client.search_model_versions(f"name='{self.name}'", page_token=token)
            out += list(page)
            token = page.token
            if not token:
                return sorted(out, key=lambda mv: int(mv.version))

    def _numbers(self) -> list[int]:
        return [int(mv.version) for mv in self._mlflow_versions() if mv.tags.get(COMPLETE) == "true"]

    def versions(self) -> list[ModelVersion]:
        """The complete versions, ascending by number."""
        return [ModelVersion.from_tags(int(mv.version), mv.tags, mv.description, self.root)
                for mv in self._mlflow_versions() if mv.tags.get(COMPLETE) == "true"]

    def incomplete_versions(self) -> list[int]:
        """Numbers of versions whose registration never finished (its process died): never listed or served."""
        return [int(mv.version) for mv in self._mlflow_versions() if mv.tags.get(COMPLETE) != "true"]

    def get(self, version: int) -> ModelVersion:
        """The complete version numbered `version`; ValueError naming the known versions if absent or incomplete."""
        from mlflow.exceptions import MlflowException

        version = validate.integer("version", version, hint="a version number, 1 for the first registered")
        try:
            mv = self.client.get_model_version(self.name, str(version))
        except MlflowException:
            mv = None
        if mv is None or mv.tags.get(COMPLETE) != "true":
            state = "is incomplete (its registration never finished)" if mv is not None else "does not exist"
            raise ValueError(f"version={version} {state}; the complete versions of {self.name!r} are "
                             f"{self._numbers() or 'none yet (register one)'}")
        return ModelVersion.from_tags(version, mv.tags, mv.description, self.root)

    def load(self, ref):
        """(ModelVersion, model) for `ref`, a version number or an alias name: the model on CPU in eval mode.

        The file's sha256 is checked against the one recorded at registration first (ValueError if it changed);
        it loads through cot_lab.core.checkpoint.load_model (safetensors: nothing is unpickled).
        """
        if isinstance(ref, str):
            version = self.alias(_alias_name("ref", ref))
            if version is None:
                raise ValueError(f"ref={ref!r} is an alias that points to no version; the aliases set are "
                                 f"{self.aliases() or 'none (promote a version first)'}")
        elif validate.is_integer(ref):
            version = validate.integer("ref", ref, hint="a version number (1 for the first) or an alias name")
        else:
            raise ValueError(f"ref={ref!r} must be a version number (an int >= 1) or an alias name, e.g. 'champion'")
        mv = self.get(version)
        path = Path(mv.path)
        if not path.is_file():
            raise ValueError(f"version {mv.version}'s file {path} is missing: the registry's artifacts were changed")
        digest = sha256_file(path)
        if digest != mv.sha256:
            raise ValueError(f"version {mv.version}'s file {path} does not match the sha256 recorded when it was "
                             f"registered ({digest[:12]}... against {mv.sha256[:12]}...): it was changed afterwards, "
                             "so it is not served; register the model again as a new version")
        return mv, load_model(path)

    # -- aliases -------------------------------------------------------------------------------------------------

    def alias(self, name: str) -> int | None:
        """The version alias `name` points to, or None if it points nowhere (one MLflow query, a few ms)."""
        from mlflow.exceptions import MlflowException

        _alias_name("name", name)
        try:
            return int(self.client.get_model_version_by_alias(self.name, name).version)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def aliases(self) -> dict[str, int]:
        """{alias: version} of every alias set."""
        return {a: int(v) for a, v in sorted(self.client.get_registered_model(self.name).aliases.items())}

    def set_alias(self, name: str, version: int, *, reason: str = "") -> None:
        """Point alias `name` at the complete `version`, recording the move (from, to, time, reason) in its history.

        No gate is asked here: `promote` is the gated way to move the champion.
        """
        _alias_name("name", name)
        self.get(version)
        self._move(name, version, reason=_reason(reason))

    def _move(self, alias: str, to: int | None, *, reason: str, expect=_ANY) -> int:
        """Move `alias` to `to` (None: to where it was before its last move) under the history's lock; returns the
        version it now points to. `expect`: the version the caller saw there; ValueError if it moved meanwhile."""
        with self._history() as con:
            con.execute("BEGIN IMMEDIATE")  # one move at a time, across threads and processes
            try:
                current = self.alias(alias)
                if expect is not _ANY and current != expect:
                    seen = lambda v: "no version" if v is None else f"v{v}"  # noqa: E731
                    raise ValueError(f"alias={alias!r} moved from {seen(expect)} to {seen(current)} while this call "
                                     "checked it (another notebook or process moved it): look at it again and retry")
                if to is None:
                    last = con.execute("SELECT from_version FROM moves WHERE model=? AND alias=? ORDER BY id DESC "
                                       "LIMIT 1", (self.name, alias)).fetchone()
                    if last is None or last[0] is None:
                        raise ValueError(f"alias={alias!r} has nothing to roll back to: "
                                         + ("it was never moved" if last is None else
                                            "before its last move it pointed to no version"))
                    to = int(last[0])
                if to != current:
                    self.client.set_registered_model_alias(self.name, alias, str(to))
                    con.execute("INSERT INTO moves (model, alias, from_version, to_version, at, reason) "
                                "VALUES (?, ?, ?, ?, ?, ?)", (self.name, alias, current, to, now_iso(), reason))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return to

    def promote(self, version: int, *, gate=None, alias: str = "champion", force: bool = False,
                reason: str = "") -> ModelVersion:
        """Move `alias` to `version` if `gate` (a GateReport of this version against the alias's current version)
        passed; returns the version.

        A failing gate is refused (ValueError naming the slices that regressed) unless force=True with a reason,
        which is recorded. gate=None is refused while the alias points somewhere (there is a champion to beat)
        unless force=True with a reason; the very first promotion needs no gate. The registry cannot tell which
        models a report compared: build it from this version and the current one (`load`).
        """
        alias = _alias_name("alias", alias)
        mv = self.get(version)
        if not isinstance(force, bool):
            raise ValueError(f"force={force!r} must be True or False")
        reason = _reason(reason)
        if force and not reason:
            raise ValueError("force=True needs a reason (reason='...'): it is recorded in the alias history")
        verdict = _gate(gate) if gate is not None else None
        current = self.alias(alias)
        if current == mv.version:  # already there: nothing moves, nothing is recorded
            return mv
        if verdict is None:
            if current is not None and not force:
                raise ValueError(f"gate=None: alias {alias!r} points to v{current}, a model to beat; pass "
                                 f"gate=cl.evaluation_gate(v{current}'s model, v{mv.version}'s model, slices), or "
                                 "force=True with a reason")
            reason = reason or "first promotion"
        else:
            passed, failed, summary = verdict
            if not passed and not force:
                raise ValueError(f"gate: v{mv.version} failed on {', '.join(map(repr, failed))}, so alias {alias!r} "
                                 f"stays at v{current}. {summary} Fix the regression, or force=True with a reason")
            verdict = f"gate {'passed' if passed else 'failed on ' + ', '.join(failed)}: {summary}"
            reason = f"{reason} ({verdict})" if reason else verdict
        self._move(alias, mv.version, reason=("forced: " if force else "") + reason, expect=current)
        return mv

    def rollback(self, alias: str = "champion", *, reason: str = "") -> int:
        """Point `alias` back to the version it pointed to before its last move (from its history), record the move
        and return that version; ValueError if there is nothing to roll back to. Twice in a row undoes the first."""
        alias = _alias_name("alias", alias)
        reason = _reason(reason)
        return self._move(alias, None, reason=f"rollback{': ' + reason if reason else ''}")

    def alias_history(self, alias: str = "champion") -> list[dict]:
        """Every move of `alias`, oldest first: {from: version or None, to: version, at: UTC ISO time, reason}."""
        alias = _alias_name("alias", alias)
        with self._history() as con:
            rows = con.execute("SELECT from_version, to_version, at, reason FROM moves WHERE model=? AND alias=? "
                               "ORDER BY id", (self.name, alias)).fetchall()
        return [{"from": f, "to": t, "at": at, "reason": r} for f, t, at, r in rows]


def _reason(reason) -> str:
    if not isinstance(reason, str):
        raise ValueError(f"reason={reason!r} must be text, e.g. 'the shifted slice matters less than the headline'")
    return reason.strip()


def _gate(gate) -> tuple[bool, list[str], str]:
    """(passed, failed slices, summary) of a GateReport or its to_dict()."""
    if hasattr(gate, "passed") and hasattr(gate, "failed") and hasattr(gate, "summary"):
        return bool(gate.passed), list(gate.failed), gate.summary()
    if isinstance(gate, dict) and isinstance(gate.get("passed"), bool) and isinstance(gate.get("slices"), list):
        failed = [s.get("name") for s in gate["slices"] if isinstance(s, dict) and s.get("verdict") == "worse"]
        return gate["passed"], failed, f"{'Passes' if gate['passed'] else 'Fails'} ({len(gate['slices'])} slices)."
    raise ValueError(f"gate={type(gate).__name__} must be a GateReport (cl.evaluation_gate(champion, candidate, "
                     "slices)) or its to_dict(), or None")
