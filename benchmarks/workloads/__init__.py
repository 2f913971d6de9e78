"""The five workloads. Each module has ``run(ctx) -> List[Row]`` and a ``TITLE``."""

from . import concurrency, folder, large, memory, tiny

#: name on the command line (``--only``) -> module, in the order they run
WORKLOADS = {
    "tiny": tiny,
    "large": large,
    "concurrency": concurrency,
    "folder": folder,
    "memory": memory,
}
