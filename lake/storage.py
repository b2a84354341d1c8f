"""Where a lake lives: a root URL (local path, ``s3://``, ``gs://``) plus storage options.

One set of options serves both I/O stacks. They are written in the object-store
spelling deltalake understands (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, …) and
translated here for fsspec (s3fs/gcsfs), which reads source files and the catalog.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.fs as pafs

_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://")
_SECRET = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL|SAS")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# object-store option → (s3fs argument path); anything unlisted is passed on untouched.
_S3FS_NAMES = {
    "AWS_ACCESS_KEY_ID": ("key",),
    "AWS_SECRET_ACCESS_KEY": ("secret",),
    "AWS_SESSION_TOKEN": ("token",),
    "AWS_ENDPOINT_URL": ("client_kwargs", "endpoint_url"),
    "AWS_REGION": ("client_kwargs", "region_name"),
}
_DELTA_ONLY = {"AWS_ALLOW_HTTP", "AWS_S3_ALLOW_UNSAFE_RENAME", "AWS_CONDITIONAL_PUT"}


def is_remote(url: str) -> bool:
    """True for ``scheme://`` URLs other than ``file://``."""
    return bool(_REMOTE.match(url)) and not url.startswith("file://")


def is_secret(option: str) -> bool:
    """Whether a storage option is a credential (a key, secret, token or password)."""
    return bool(_SECRET.search(option.upper()))


def expand_env(options: dict[str, Any]) -> dict[str, str]:
    """Replace ``${VAR}`` in option values with the environment's value (secrets stay out of YAML)."""
    return {k: _ENV_REFERENCE.sub(lambda m: os.environ.get(m.group(1), ""), str(v))
            for k, v in options.items()}


@dataclass(frozen=True)
class Location:
    """A lake root plus the options needed to reach it.

    ``repr`` never shows option values: they may hold credentials.
    """

    root: str
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, root: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> "Location":
        """Normalise a root (local paths become absolute) and expand ``${ENV}`` references."""
        text = str(root)
        if not is_remote(text):
            text = str(Path(text.removeprefix("file://")).expanduser().resolve())
        return cls(text.rstrip("/"), expand_env(storage_options or {}))

    @property
    def remote(self) -> bool:
        return is_remote(self.root)

    def public(self) -> "Location":
        """This location without its credentials: what travels in dask task graphs. Whoever
        opens it takes the credentials from its own environment (AWS_*), as workers do."""
        return Location(self.root, {k: v for k, v in self.storage_options.items() if not is_secret(k)})

    def secrets(self) -> dict[str, str]:
        """The credentials among the options, as environment variables for local worker processes."""
        return {k: v for k, v in self.storage_options.items() if is_secret(k)}

    def join(self, *parts: str) -> str:
        """The URL of a path under the root."""
        return "/".join([self.root, *parts])

    def delta_options(self) -> dict[str, str] | None:
        """Options for deltalake's object store (None for local lakes)."""
        return dict(self.storage_options) if self.remote else None

    def arrow_filesystem(self, path: str) -> pafs.FileSystem:
        """A native Arrow filesystem rooted at ``path`` under this location (for Parquet reads).

        Native filesystems read without the GIL; the Python-backed one deltalake would
        otherwise use can abort the interpreter at exit with reads still in flight.
        """
        if not self.remote:
            return pafs.SubTreeFileSystem(path, pafs.LocalFileSystem())
        scheme, _, rest = path.partition("://")
        if scheme == "s3":
            return pafs.SubTreeFileSystem(rest, _arrow_s3(self.storage_options))
        native, root = pafs.FileSystem.from_uri(path)
        return pafs.SubTreeFileSystem(root, native)

    def filesystem(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem for the root, with the options translated for it."""
        protocol = self.root.split("://", 1)[0] if self.remote else "file"
        return fsspec.filesystem(protocol, **fsspec_options(protocol, self.storage_options))


def _arrow_s3(explicit: dict[str, str]) -> pafs.FileSystem:
    """Arrow's S3 filesystem from object-store options, falling back to AWS_* variables as deltalake does.

    One per process and set of options: each new one costs a request to the bucket before its
    first use (a staged file or a dataset read would pay it every time). Keyed by the process
    too, since an AWS client must not cross a fork.
    """
    options = _with_aws_environment(explicit)
    return _cached_arrow_s3(tuple(sorted(options.items())), os.getpid())


@functools.lru_cache(maxsize=8)
def _cached_arrow_s3(options: tuple[tuple[str, str], ...], pid: int) -> pafs.FileSystem:
    """Arrow's S3 filesystem for ``options`` (made once per ``pid``, see :func:`_arrow_s3`)."""
    options = dict(options)
    endpoint = options.get("AWS_ENDPOINT_URL")
    kwargs = {"access_key": options.get("AWS_ACCESS_KEY_ID"),
              "secret_key": options.get("AWS_SECRET_ACCESS_KEY"),
              "session_token": options.get("AWS_SESSION_TOKEN"),
              "region": options.get("AWS_REGION")}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host, scheme=scheme)
    return pafs.S3FileSystem(**{k: v for k, v in kwargs.items() if v})


def _with_aws_environment(options: dict[str, str]) -> dict[str, str]:
    """The options, with AWS_* variables filling what they leave out, as deltalake does (a key
    from the environment and a secret from the catalog must not leave a client half a credential)."""
    return {**{k: os.environ[k] for k in _S3FS_NAMES if os.environ.get(k)}, **options}


def fsspec_options(protocol: str, options: dict[str, str]) -> dict[str, Any]:
    """Translate object-store options into the keyword arguments of fsspec's filesystem."""
    if protocol != "s3":
        return {k: v for k, v in options.items() if k not in _DELTA_ONLY}
    options = _with_aws_environment(options)
    kwargs: dict[str, Any] = {}
    for name, value in options.items():
        if name in _DELTA_ONLY:
            continue
        target = _S3FS_NAMES.get(name.upper(), (name,))
        holder = kwargs
        for key in target[:-1]:
            holder = holder.setdefault(key, {})
        holder[target[-1]] = value
    return kwargs
