"""Offline WordNet, installed: Debian's `wordnet-base` + `wordnet-sense-index` files laid out where
NLTK reads them, a preflight that fails fast in one line, and a guard that makes any NLTK download
an error. The lookups the ops use are in `augment.lexicon`.

Layout: `<data dir>/corpora/wordnet/` holds the 14 Debian files plus `lexnames`, which Debian does
not ship and NLTK's reader opens first. The data dir is `$RAYBATCH_NLTK_DATA`, else
`<sys.prefix>/nltk_data` (the venv): NLTK searches that folder by default and every Ray worker runs
the same interpreter, so nobody has to set NLTK_DATA. NLTK 3.10 refuses symlinks that leave the
corpus root, so the files are copied, not linked.

`python -m augment.wordnet_install install` (run by `make setup`) apt-installs the packages when missing
and lays the files out, then compiles the index the lookups load (`augment.wordnet_index`);
`python -m augment.wordnet_install check` says whether it worked. Without Debian,
point `$RAYBATCH_WORDNET_DIR` at any WordNet 3.0 `dict/` folder instead of /usr/share/wordnet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from jobs.errors import SpecError

DEBIAN_DIR = Path("/usr/share/wordnet")
PACKAGES = ("wordnet-base", "wordnet-sense-index")
# What NLTK's WordNetCorpusReader opens, besides `lexnames` (written below).
DEBIAN_FILES = ("cntlist.rev", "index.sense", "index.adj", "index.adv", "index.noun", "index.verb",
                "data.adj", "data.adv", "data.noun", "data.verb", "adj.exc", "adv.exc", "noun.exc", "verb.exc")
INSTALL_HINT = ("install it with `python -m augment.wordnet_install install` (or `make setup`), which runs "
                "`apt-get install -y wordnet-base wordnet-sense-index` and lays the files out for NLTK")

# WordNet 3.0's lexicographer file names (lexnames(5WN)): number, name, syntactic category.
_LEXNAMES = """adj.all 3|adj.pert 3|adv.all 4|noun.Tops 1|noun.act 1|noun.animal 1|noun.artifact 1|
noun.attribute 1|noun.body 1|noun.cognition 1|noun.communication 1|noun.event 1|noun.feeling 1|noun.food 1|
noun.group 1|noun.location 1|noun.motive 1|noun.object 1|noun.person 1|noun.phenomenon 1|noun.plant 1|
noun.possession 1|noun.process 1|noun.quantity 1|noun.relation 1|noun.shape 1|noun.state 1|noun.substance 1|
noun.time 1|verb.body 2|verb.change 2|verb.cognition 2|verb.communication 2|verb.competition 2|
verb.consumption 2|verb.contact 2|verb.creation 2|verb.emotion 2|verb.motion 2|verb.perception 2|
verb.possession 2|verb.social 2|verb.stative 2|verb.weather 2|adj.ppl 3"""


class LexiconMissing(SpecError):
    """WordNet is not installed where the augmentation ops look for it (exit code 2, one line)."""


class DownloadBlocked(RuntimeError):
    """Something tried to download NLTK data at run time; raybatch never downloads."""


def lexnames_text() -> str:
    entries = [e.strip() for e in _LEXNAMES.replace("\n", "").split("|")]
    return "".join(f"{i:02d}\t{name}\t{category}\n" for i, (name, category) in
                   enumerate(e.split() for e in entries))


def source_dir() -> Path:
    """Where WordNet's dict files are installed: $RAYBATCH_WORDNET_DIR, else Debian's folder."""
    return Path(os.environ.get("RAYBATCH_WORDNET_DIR") or DEBIAN_DIR)


def data_dir() -> Path:
    """The NLTK data folder raybatch reads: $RAYBATCH_NLTK_DATA, else the venv's `nltk_data`."""
    return Path(os.environ.get("RAYBATCH_NLTK_DATA") or Path(sys.prefix) / "nltk_data")


def wordnet_root(base: Path | None = None) -> Path:
    return (base or data_dir()) / "corpora" / "wordnet"


def missing_files(root: Path) -> list[str]:
    """Files NLTK needs that `root` lacks (or holds empty)."""
    wanted = (*DEBIAN_FILES, "lexnames")
    return [name for name in wanted if not (root / name).is_file() or (root / name).stat().st_size == 0]


def _debian_missing(source: Path) -> list[str]:
    return [name for name in DEBIAN_FILES if not (source / name).is_file()]


def apt_install() -> None:
    """apt-get install the Debian packages, as root or through passwordless sudo."""
    if shutil.which("apt-get") is None:
        raise LexiconMissing("WordNet is missing and this system has no apt-get; copy WordNet 3.0's dict "
                             "files into a folder and set RAYBATCH_WORDNET_DIR to it")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise LexiconMissing(f"WordNet is missing: run `sudo apt-get install -y {' '.join(PACKAGES)}` "
                                 f"then `python -m augment.wordnet_install install`")
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, env=env).returncode != 0:
        # A fresh machine often has no package lists yet.
        subprocess.run([*prefix, "apt-get", "update"], env=env, check=False)
        if subprocess.run(install, env=env).returncode != 0:
            raise LexiconMissing(f"`{' '.join(install)}` failed; install {' and '.join(PACKAGES)} and rerun "
                                 f"`python -m augment.wordnet_install install`")


def install(source: Path | None = None, base: Path | None = None, apt: bool = True) -> Path:
    """Lay WordNet out under `base` (default: data_dir()) for NLTK; apt-install it first when `apt`
    and the Debian files are missing. Idempotent, and atomic: a half-copied folder is never used."""
    root = wordnet_root(base)
    if not missing_files(root):
        return root
    source = source or source_dir()
    if _debian_missing(source) and apt and source == DEBIAN_DIR:
        apt_install()
    absent = _debian_missing(source)
    if absent:
        raise LexiconMissing(f"WordNet files missing in {source} ({', '.join(absent[:3])}): {INSTALL_HINT}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".wordnet.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name in DEBIAN_FILES:
            shutil.copy2(source / name, tmp / name)  # with its mtime: the compiled index is named after it
        (tmp / "lexnames").write_text(lexnames_text(), encoding="ascii")
        if root.exists():
            if not missing_files(root):  # another process laid it out meanwhile
                return root
            shutil.rmtree(root)  # an incomplete earlier layout
        try:
            os.rename(tmp, root)
        except OSError:  # another process finished first
            if missing_files(root):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def check() -> Path:
    """Return the WordNet folder, laying it out from Debian's files if only that step is missing;
    raise LexiconMissing (one line saying what to install) when WordNet is nowhere on this machine."""
    root = wordnet_root()
    if not missing_files(root):
        return root
    if not _debian_missing(source_dir()):
        try:
            return install(apt=False)
        except OSError as exc:
            raise LexiconMissing(f"cannot lay WordNet out in {root}: {exc}; set RAYBATCH_NLTK_DATA to a "
                                 f"writable folder") from None
    raise LexiconMissing(f"WordNet not found ({root} lacks {', '.join(missing_files(root)[:3])}): {INSTALL_HINT}")


# ---- no downloads, ever ------------------------------------------------------------------------

_GUARD_LOCK = threading.Lock()


def _refuse_download(*args, **kwargs):
    what = args[0] if args else kwargs.get("info_or_id", "data")
    raise DownloadBlocked(f"raybatch never downloads NLTK data (asked for {what!r}); WordNet comes from "
                          f"the Debian packages: {INSTALL_HINT}")


def offline() -> Path:
    """Make this process offline for NLTK: our data dir first on nltk.data.path, and every NLTK
    download entry point raising DownloadBlocked. Returns the WordNet folder."""
    root = check()
    import nltk
    import nltk.downloader

    with _GUARD_LOCK:
        path = str(root.parent.parent)
        if not nltk.data.path or nltk.data.path[0] != path:
            if path in nltk.data.path:
                nltk.data.path.remove(path)
            nltk.data.path.insert(0, path)
        nltk.download = _refuse_download
        nltk.downloader.download = _refuse_download
        nltk.downloader.Downloader.download = lambda self, *a, **k: _refuse_download(*a, **k)
    return root


def main(argv: list[str] | None = None) -> int:
    """`install` (apt + layout) or `check`; prints one line, exit 0 when WordNet is ready, 2 if not."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "check"
    if command not in ("install", "check"):
        print("usage: python -m augment.wordnet_install [install|check]", file=sys.stderr)
        return 2
    try:
        root = install() if command == "install" else check()
        if command == "install":
            from augment import wordnet_index

            wordnet_index.ensure()  # compiled once here, so no worker waits for it
    except LexiconMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"WordNet ready for NLTK in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
