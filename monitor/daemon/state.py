"""Where the memory and the remediation history survive restarts on this machine: the file store
(`--state-file`) and the in-memory one, both StateStores of monitor.core.state_doc."""

from __future__ import annotations

import os
import tempfile

from monitor.core.errors import StateError
from monitor.core.state_doc import State, dumps, loads


class FileStateStore:
    """`--state-file`: written to a temporary file in the same directory, fsynced, then renamed over
    the old one, so a crash leaves either the old document or the new one, never half of one."""

    durable = True

    def __init__(self, path: str, cluster: str) -> None:
        self.path = path
        self.cluster = cluster

    @property
    def where(self) -> str:
        return f"file {self.path}"

    def load(self) -> State | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"state {self.path}: cannot be read ({exc})") from None
        return loads(text, self.cluster, self.path)

    def save(self, state: State) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".albsg-state-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(dumps(state))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                _remove(tmp)
                raise
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # make the rename itself durable
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StateError(f"state {self.path}: cannot be written ({exc})") from None

    def probe(self) -> str | None:
        """Creates and removes a temporary file where save() would: permission bits alone do not
        tell (root ignores them; a read-only mount or an immutable directory does not)."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            if os.path.isdir(self.path):
                return f"state {self.path}: is a directory"
            fd, tmp = tempfile.mkstemp(prefix=".albsg-probe-", dir=directory)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            return f"state {self.path}: cannot be written ({exc})"
        return None

    def missing(self) -> bool:
        """One stat: the file was deleted, or the volume under it replaced by an empty one."""
        return not os.path.exists(self.path)


class InMemoryStateStore:
    """No --state-file and no Kubernetes: remembered for the life of the process only."""

    durable = False
    where = "memory"

    def __init__(self) -> None:
        self.state: State | None = None

    def load(self) -> State | None:
        return self.state

    def save(self, state: State) -> None:
        self.state = state

    def probe(self) -> str | None:
        return None

    def missing(self) -> bool:
        return False


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
