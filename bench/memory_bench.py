"""Memory benchmark: a worker's memory at each stage of its start, beside a bare Litestar app.

    python -m bench.memory_bench

Each stage runs in a fresh interpreter, as a ``heatcrew serve`` worker is one (uvicorn spawns its
workers: nothing is shared with the parent after a fork), and reads ``/proc/self/smaps_rollup``:

- ``import``: ``import backend.app``;
- ``create_app``: the application built from settings (routes, templates, catalogues, pool);
- ``startup``: and its start hooks' work (the PDF font looked for, ``check_font``);
- ``printing``: after a worker's first signed document: ReportLab imported, the CJK font parsed
  (a worker that prints none never pays this);
- the floor: ``bench/bare_app.py`` imported (Litestar, msgspec, the contract's structs).

RSS is the figure reported: it is what a container limit and ``ps`` count. PSS and USS are printed
beside it; in a spawned worker they differ from RSS only by shared libraries and the mapped font
file's pages, which the page cache shares between workers. Under load: the ``RSS MiB`` column of
``bench/http_bench.py``, per worker, beside the bare app under the same uvicorn workers.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.report import Figure

__all__ = ("figures",)

_PROBE = """
import json, sys
stage = sys.argv[1]
if stage == "bare":
    import bench.bare_app
else:
    import backend.app
    if stage != "import":
        from backend.settings import Settings
        app = backend.app.create_app(Settings.from_env())
    if stage in ("startup", "printing"):
        from backend.evidence.pdf import check_font
        assert check_font(), "no PDF font"
    if stage == "printing":
        from backend.evidence import pdf_layout
        from backend.evidence.pdf import find_font
        pdf_layout._register(find_font().regular)
import gc
gc.collect()
sizes = {}
for line in open("/proc/self/smaps_rollup"):
    parts = line.split()
    if len(parts) >= 2 and parts[1].isdigit():
        sizes[parts[0].rstrip(":")] = int(parts[1]) / 1024
sizes["USS"] = sizes["Private_Clean"] + sizes["Private_Dirty"]
print(json.dumps({k: sizes[k] for k in ("Rss", "Pss", "USS")}))
"""

STAGES = ("import", "create_app", "startup", "printing")


def probe(stage: str, env: dict[str, str]) -> dict[str, float]:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, stage], env=env, cwd=root, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def figures(*, quick: bool = False) -> list[Figure]:
    """Every stage (quick changes nothing: each is one interpreter start)."""
    workdir = Path(tempfile.mkdtemp(prefix="heatcrew-memory-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATCREW_")}
    env |= {
        "HEATCREW_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "HEATCREW_VAR_DIR": str(workdir / "var"),
        "HEATCREW_SECRET_KEY": "memory-bench-signing-key-" + "x" * 24,
    }
    bare = probe("bare", env)
    print(f"{'stage':12} {'RSS':>7} {'PSS':>7} {'USS':>7}  MiB")
    print(f"{'bare app':12} {bare['Rss']:7.1f} {bare['Pss']:7.1f} {bare['USS']:7.1f}")
    out = []
    for stage in STAGES:
        sizes = probe(stage, env)
        print(f"{stage:12} {sizes['Rss']:7.1f} {sizes['Pss']:7.1f} {sizes['USS']:7.1f}")
        out.append(
            Figure(
                "memory",
                f"RSS after {stage}",
                sizes["Rss"],
                "MiB",
                floor=bare["Rss"],
                floor_is="bare Litestar app imported",
                note=f"PSS {sizes['Pss']:.0f}, USS {sizes['USS']:.0f} MiB",
            )
        )
    return out


if __name__ == "__main__":
    figures()
