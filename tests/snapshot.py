"""A lake's files with their sizes and modification times: comparing two snapshots shows any write."""

import os


def lake_files(root: str) -> dict[str, tuple[int, int]]:
    """Every file under the lake with its size and modification time: any write shows."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            info = os.stat(os.path.join(folder, name))
            found[os.path.relpath(os.path.join(folder, name), root)] = (info.st_size, info.st_mtime_ns)
    return found
