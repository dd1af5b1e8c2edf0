"""Lambda assets built without Docker.

An asset is a folder holding the `cappi` package, the stage's club registry as `clubs.json` (where
`cappi.settings.DEFAULT_CLUBS_FILE` looks for it) and the third-party packages the function imports. pip installs
those from wheels built for the Lambda platform (`--platform ... --only-binary=:all:`), so this machine's
interpreter and architecture do not matter; boto3 is left to the runtime.

Bytecode: Lambda's task root is read-only, so an asset without `.pyc` files is compiled again at every cold start
(about 0.25 s of the query function's ~0.55 s import, measured here). When an interpreter of the runtime's Python
version is on this machine (`python3.13`), the asset is compiled with it, with hash-based `.pyc` files that do not
depend on file times; without one the asset still works, only its cold starts are slower, and a warning says so.

Everything is cached under `build/` by a hash of its inputs: the third-party set by the pins, the package list and
the platform; the finished asset by that plus the package's source and the registry. A repeated synth reuses both
and needs no network; the hash doubles as the CDK asset hash, so CDK does not fingerprint the folder again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform as host_platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build"
PACKAGE_DIR = ROOT / "functions" / "cappi"
PINS_FILE = ROOT / "functions" / "requirements.txt"
REGISTRY_NAME = "clubs.json"

LAMBDA_PYTHON = "3.13"
LAMBDA_WHEEL_PLATFORM = "manylinux2014_aarch64"  # Lambda's arm64 (Graviton) on Amazon Linux 2023
# The runtime ships these; a copy in the asset would only add size and shadow the runtime's own.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
_UNUSED_IN_LAMBDA = ("bin",)  # console scripts pip writes next to the packages
_STALE_AFTER_S = 7 * 24 * 3600  # cache entries untouched this long are removed


class BundlingError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Platform:
    """Where an asset's binary wheels must run: the cache key names it, pip's arguments select its wheels, and
    `python` is the interpreter version its bytecode is compiled for."""

    name: str
    pip_args: tuple[str, ...]
    python: str = LAMBDA_PYTHON

    @classmethod
    def lambda_arm64(cls, python: str = LAMBDA_PYTHON) -> Platform:
        return cls(
            name=f"lambda-cp{python.replace('.', '')}-arm64",
            pip_args=(
                "--platform",
                LAMBDA_WHEEL_PLATFORM,
                "--implementation",
                "cp",
                "--python-version",
                python,
                "--only-binary=:all:",
            ),
        )

    @classmethod
    def this_machine(cls) -> Platform:
        """The running interpreter's platform, for tests that import an asset here."""
        return cls(
            name=f"local-{sys.implementation.cache_tag}-{host_platform.machine().lower()}",
            pip_args=("--only-binary=:all:",),
            python=f"{sys.version_info.major}.{sys.version_info.minor}",
        )


LAMBDA_PLATFORM = Platform.lambda_arm64()


@dataclass(frozen=True, slots=True)
class Asset:
    path: Path
    hash: str


def pins(path: Path = PINS_FILE) -> dict[str, str]:
    """Normalized distribution name -> pinned version, from a requirements file of `name==version` lines."""
    found: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise BundlingError(f"{path}: {line!r} is not pinned with '=='")
        found[normalize(name.split("[", 1)[0])] = version.strip()
    return found


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def install_packages(
    packages: Sequence[str], platform: Platform, *, build_dir: Path = BUILD_DIR, pins_file: Path = PINS_FILE
) -> Path:
    """A folder with `packages` and their dependencies installed for `platform`, built once per input hash."""
    key = _digest(platform.name, *platform.pip_args, *sorted(packages), pins_file.read_bytes())
    target = build_dir / "deps" / f"{platform.name}-{key[:16]}"
    if target.is_dir():
        _touch(target)
        return target

    def install(tmp: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            "--no-compile",  # this interpreter's bytecode would be useless (and wrong) for Lambda's Python
            "--target",
            str(tmp),
            "--constraint",
            str(pins_file),
            *platform.pip_args,
            *packages,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise BundlingError(
                f"pip could not install {', '.join(packages)} for {platform.name}:\n{done.stderr[-4000:]}"
            )
        _require_pinned(tmp, pins(pins_file), pins_file)

    _build_once(target, install)
    return target


def build_asset(
    packages: Sequence[str],
    registry_file: Path,
    platform: Platform = LAMBDA_PLATFORM,
    *,
    build_dir: Path = BUILD_DIR,
    package_dir: Path = PACKAGE_DIR,
) -> Asset:
    """The asset folder for a function that imports `packages`, with `registry_file` bundled as clubs.json."""
    if RUNTIME_PROVIDED & {normalize(p) for p in packages}:
        raise BundlingError(f"{sorted(RUNTIME_PROVIDED)} come with the Lambda runtime; do not bundle them")
    deps = install_packages(packages, platform, build_dir=build_dir)
    registry = registry_file.read_bytes()
    compiler = bytecode_compiler(platform.python)
    compiled = f"bytecode-cp{platform.python.replace('.', '')}" if compiler else "no-bytecode"
    key = _digest(deps.name, _tree_digest(package_dir), registry, compiled)
    target = build_dir / "assets" / key[:24]

    def assemble(tmp: Path) -> None:
        _link_tree(deps, tmp)
        for name in (*RUNTIME_PROVIDED, *_UNUSED_IN_LAMBDA):
            shutil.rmtree(tmp / name, ignore_errors=True)
        for info in tmp.glob("*.dist-info"):
            if normalize(info.name.rsplit("-", 1)[0]) in RUNTIME_PROVIDED:
                shutil.rmtree(info)
        shutil.copytree(package_dir, tmp / package_dir.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (tmp / REGISTRY_NAME).write_bytes(registry)
        if compiler:
            _compile(compiler, tmp)

    if target.is_dir():
        _touch(target)
    else:
        _build_once(target, assemble)
        _prune(build_dir)
    return Asset(path=target, hash=key)


_compilers: dict[str, str | None] = {}


def bytecode_compiler(python: str) -> str | None:
    """An interpreter of version `python` (e.g. "3.13") to compile assets with: this one, $CAPPI_LAMBDA_PYTHON,
    `python3.13` on PATH, or one installed by pyenv."""
    if python not in _compilers:
        candidates = [sys.executable] if f"{sys.version_info.major}.{sys.version_info.minor}" == python else []
        candidates += [c for c in (os.environ.get("CAPPI_LAMBDA_PYTHON"), shutil.which(f"python{python}")) if c]
        # pyenv's shims refuse versions that are installed but not selected; its version folders do not.
        pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
        candidates += [str(p) for p in sorted(pyenv.glob(f"{python}*/bin/python{python}"), reverse=True)]
        _compilers[python] = next((c for c in candidates if _reports_version(c, python)), None)
        if _compilers[python] is None:
            print(
                f"cappi bundling: no python{python} found; Lambda assets ship without bytecode, so each cold start "
                "compiles the modules it imports (slower, still correct)",
                file=sys.stderr,
            )
    return _compilers[python]


def _reports_version(interpreter: str, python: str) -> bool:
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    try:
        done = subprocess.run([interpreter, "-c", code], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == python


def _compile(interpreter: str, folder: Path) -> None:
    # unchecked-hash: the runtime trusts the .pyc without comparing file times, which zipping does not keep.
    command = [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        # A module that does not compile would also fail to import; the completeness test names it.
        print(f"cappi bundling: compileall reported problems in {folder}:\n{done.stdout[-2000:]}", file=sys.stderr)


def _build_once(target: Path, build: Callable[[Path], None]) -> None:
    """Build into a temporary sibling and rename it into place, so a half-built folder is never used and two
    processes building the same thing at once both end up with one complete copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _require_pinned(site: Path, pinned: dict[str, str], pins_file: Path) -> None:
    """Every installed distribution must be pinned, or assets would change with whatever PyPI serves next."""
    unpinned = []
    for info in site.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        if pinned.get(normalize(name)) != version:
            unpinned.append(f"{name}=={version}")
    if unpinned:
        raise BundlingError(f"pin these in {pins_file.relative_to(ROOT)}: {', '.join(sorted(unpinned))}")


def _link_tree(source: Path, destination: Path) -> None:
    # Hard links: the cached packages are never modified in place, and copying thousands of files is slow.
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, destination, copy_function=link, dirs_exist_ok=True)


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _digest(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)  # marks the entry as in use, so pruning keeps it


def _prune(build_dir: Path, now: float | None = None) -> None:
    cutoff = (now or time.time()) - _STALE_AFTER_S
    for entry in _cache_entries(build_dir):
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _cache_entries(build_dir: Path) -> Iterable[Path]:
    for kind in ("deps", "assets"):
        folder = build_dir / kind
        if folder.is_dir():
            yield from (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
