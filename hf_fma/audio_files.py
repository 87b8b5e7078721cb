"""The audio files under the paths a user names, and why each one that cannot be read cannot.

`hf-fma predict` takes files and folders; a folder is searched recursively. A path that cannot be read
(missing, a broken or looping link, a FIFO, a socket, no permission) gets the reason as its error, reported
like an undecodable file, and the rest are classified.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

# Extensions a folder search picks up. Files named on the command line are tried whatever their name.
AUDIO_EXTENSIONS = frozenset(
    {".aac", ".aif", ".aifc", ".aiff", ".flac", ".m4a", ".mka", ".mp3", ".mp4", ".oga", ".ogg", ".opus",
     ".wav", ".webm", ".wma"}
)


def find_audio_files(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, str | None]]:
    """(file, error) pairs in the order given: a file is taken as is; a folder is searched recursively, in
    sorted order, for files with an audio extension (hidden files skipped: macOS leaves `._song.mp3`
    resource forks beside the real ones); each file once. The error names what is wrong with a path, to be
    reported like an undecodable file: missing, a broken or looping symbolic link, not a regular file (a
    FIFO would block the run), unreadable, or a folder with no audio or one that cannot be listed."""
    found: list[tuple[Path, str | None]] = []
    seen: set[str] = set()

    def add(path: Path, error: str | None = None) -> None:
        # realpath, unlike Path.resolve, does not raise on a link loop; a dangling link is its own key.
        key = os.path.realpath(path) if path.exists() else os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            found.append((path, error))

    for path in (Path(name).expanduser() for name in paths):
        if path.is_dir():
            files = _audio_files_under(path)
            if not files:
                add(path, f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder")
            for file, error in files:
                add(file, error or _unreadable_reason(file))
        else:
            add(path, _unreadable_reason(path))
    return found


# File types a path can be besides a regular file, as a row's error names them.
_FILE_TYPES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _unreadable_reason(path: Path) -> str | None:
    """Why `path` cannot be read as an audio file, from its metadata alone (a FIFO is never opened: reading
    it would wait for a writer forever); None for a readable regular file."""
    try:
        info = path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if path.is_symlink():
            return f"broken symbolic link (to {os.readlink(path)}, which does not exist)"
        if error.errno == errno.ENOENT:
            return "no such file or folder"
        return error.strerror or str(error)
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for is_kind, name in _FILE_TYPES if is_kind(info.st_mode)), "not a file")
        return f"not a regular file: {kind}"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _audio_files_under(folder: Path) -> list[tuple[Path, str | None]]:
    """(path, error) for the audio files in a folder and its sub-folders, symlinked ones included, sorted,
    hidden ones skipped: every entry with an audio extension that is not a folder (a broken link or a FIFO
    too, to get its error row), and each sub-folder that cannot be listed, with its error. A folder reached
    twice (two links to it, or a link to an ancestor) is searched once, so a loop of links ends."""
    files: list[tuple[Path, str | None]] = []
    searched: set[str] = set()

    def unlisted(error: OSError) -> None:
        files.append((Path(error.filename), f"folder cannot be listed: {error.strerror or error}"))

    for root, subfolders, names in os.walk(folder, onerror=unlisted, followlinks=True):
        real = os.path.realpath(root)
        if real in searched:
            subfolders[:] = []
            continue
        searched.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))  # the first link wins
        files.extend(
            (Path(root, name), None) for name in names
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS
        )
    return sorted(files)


__all__ = ["AUDIO_EXTENSIONS", "find_audio_files"]
