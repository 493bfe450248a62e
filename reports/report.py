"""``qrtl report``: generate, verify (and later cost) every default unit."""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from hw.registry import all_units, instance

__all__ = ["verify_unit", "run_report"]


def verify_unit(name: str, vectors: int = 100_000, seed: int = 0) -> dict:
    """Verify the default configuration of unit ``name`` on Verilator; one summary row."""
    from sim.runner import verify
    inst = instance(name)
    res = verify(inst, vectors=vectors, seed=seed)
    return {"unit": name, "module": inst.module, "latency": inst.latency,
            "vectors": res.vectors, "mismatches": res.mismatches,
            "vectors_per_s": round(res.vectors_per_second)}


def run_report(out_dir: Path, jobs: int = 1) -> list[Path]:
    """Write the Verilog of every default unit and a verification table under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vdir = out_dir / "verilog"
    vdir.mkdir(exist_ok=True)
    written = []
    names = [u.name for u in all_units()]
    for name in names:
        inst = instance(name)
        path = vdir / f"{inst.module}.v"
        path.write_text(inst.verilog())
        written.append(path)
    with ProcessPoolExecutor(max(1, jobs)) as pool:
        rows = list(tqdm(pool.map(verify_unit, names), total=len(names),
                         desc="verify units", unit="unit"))
    path = out_dir / "verification.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    written.append(path)
    return written
