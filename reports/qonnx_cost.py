"""Cost per inference of an imported QONNX network (``qrtl net --qonnx MODEL --cost``).

For a network lowered onto the units (:mod:`qrtl.golden.nets.qonnx`):

* **operations per inference** of every layer and unit (:meth:`QonnxNet.op_counts`, divided
  by the model's batch size): a MAC step of ``int_mac``, one product cycle of ``fp8_dot``,
  one requantization, one binary dot product of ``xnor_popcount``;
* **energy per operation** of each layer's unit, measured by the cost model
  (:func:`qrtl.reports.cost.cost_unit`: synthesis onto the Liberty library, gate-level
  simulation with glitches) on that layer's own operand stream
  (:meth:`QonnxNet.streams`: the operations of a run of consecutive output positions of
  the given input, in datapath order);
* **energy per inference** = sum over layers and units of operations x energy per
  operation; **area** of one instance of each unit configuration the network uses.

Scope: the arithmetic units only. Memory (weights, activations, im2col buffers), data
movement, control and the NumPy stages (layout operators, pooling, an input quantizer)
are not counted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from qrtl.golden.errors import QrtlError
from qrtl.golden.procs import pool_map

from .cost import DEFAULT_CLOCK_NS, DEFAULT_VECTORS, cost_unit
from .tables import Table, save_figure

__all__ = ["SCOPE", "QonnxCost", "qonnx_cost", "config_label", "SHIPPED_MODELS",
           "shipped_models", "qonnx_report_rows", "qonnx_figure"]

SCOPE = ("arithmetic units only: memory (weights, activations, im2col buffers), data "
         "movement, control and the NumPy stages (layout, pooling, input quantizer) are "
         "not counted")


def config_label(unit: str, params: dict) -> str:
    """``int_mac a_width=9 b_width=8 acc_width=32 signed=1``."""
    return " ".join([unit] + [f"{k}={v}" for k, v in params.items()])


@dataclass
class QonnxCost:
    """What :func:`qonnx_cost` measured.

    Attributes
    ----------
    model : str
    params : dict
        The import parameters (``scheme``, ...).
    library : dict
        The Liberty library (``name``, ``corner``, ...).
    clock_ns, vectors, seed : float, int, int
        Clock of the leakage term, vectors simulated per stream, seed of the streams.
    batch : int
        Images in the model's input (operations are per image).
    layers : list of dict
        One row per layer and unit: ``stage``, ``unit``, ``config``,
        ``ops_per_inference``, ``energy_pj_per_op`` (on the layer's own stream),
        ``energy_nj_per_inference``, ``share_pct``, ``area_um2`` (one instance),
        ``delay_ps``, ``glitch_fraction``.
    units : list of dict
        One row per unit configuration: ``config``, ``unit``, ``params``, ``area_um2``,
        ``layers``, ``ops_per_inference``, ``energy_nj_per_inference``.
    ops_per_inference : int
    energy_nj_per_inference : float
    area_um2 : float
        One instance of each unit configuration, summed.
    scope : str
        What is not counted.
    seconds : float
    """

    model: str
    params: dict
    library: dict
    clock_ns: float
    vectors: int
    seed: int
    batch: int
    layers: list
    units: list
    ops_per_inference: int
    energy_nj_per_inference: float
    area_um2: float
    scope: str
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)

    def table(self) -> Table:
        """The per-layer breakdown (CSV has every column, Markdown the brief ones)."""
        cols = ["stage", "unit", "config", "ops_per_inference", "energy_pj_per_op",
                "energy_nj_per_inference", "share_pct", "area_um2", "delay_ps",
                "glitch_fraction"]
        return Table(self.layers, cols, caption=f"Cost per inference of {Path(self.model).name} "
                     f"by layer ({self.library.get('name', '')}; {SCOPE})",
                     brief=["stage", "unit", "ops_per_inference", "energy_pj_per_op",
                            "energy_nj_per_inference", "share_pct"])

    def units_table(self) -> Table:
        cols = ["config", "layers", "ops_per_inference", "energy_nj_per_inference", "area_um2"]
        return Table(self.units, cols, caption=f"Unit configurations of {Path(self.model).name} "
                     f"(area of one instance)")

    def write(self, out, stem: str = "qonnx_cost") -> list[Path]:
        """``stem.csv``, ``stem_units.csv``, ``stem.md`` and the bar plot ``stem.png`` /
        ``stem.svg`` under ``out``."""
        from qrtl.golden.cache import atomic_write
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [self.table().csv(out / f"{stem}.csv"),
                   self.units_table().csv(out / f"{stem}_units.csv")]
        md = out / f"{stem}.md"
        atomic_write(md, self.markdown() + "\n")
        written.append(md)
        written += qonnx_figure([self], out, stem)
        return written

    def markdown(self) -> str:
        return "\n".join([
            f"Energy per inference of `{Path(self.model).name}`: "
            f"{self.energy_nj_per_inference:.4g} nJ ({self.ops_per_inference:,} unit operations; "
            f"{self.library.get('name', '')}, clock {self.clock_ns:g} ns; each layer's energy "
            f"per operation measured on its own operand stream, {self.vectors} vectors). "
            f"Scope: {SCOPE}.", "", self.table().markdown(), "", self.units_table().markdown()])


def _cost_job(args) -> dict:
    unit, params, liberty, arrays, vectors, clock_ns, label = args
    return cost_unit(unit, params, liberty=liberty, stimulus=arrays, vectors=vectors,
                     clock_ns=clock_ns, stimulus_label=label).as_dict()


def qonnx_cost(net, x, *, liberty=None, vectors: int = DEFAULT_VECTORS,
               clock_ns: float = DEFAULT_CLOCK_NS, seed: int = 0, jobs: int = 1,
               progress: bool = False) -> QonnxCost:
    """Operations, energy and area per inference of an imported network.

    Parameters
    ----------
    net : QonnxNet
        From :func:`qrtl.golden.nets.qonnx.load_qonnx`.
    x : array
        The input whose operand streams are measured (the model's input shape).
    liberty : str, Path or Library, optional
        The cell library (default: the shipped one).
    vectors : int
        Operations simulated per layer and unit.
    clock_ns : float
        Clock period of the leakage term (one operation per cycle).
    seed : int
        Where in the output each layer's stream starts (:meth:`QonnxNet.streams`).
    jobs : int
        Cost measurements in parallel.

    Returns
    -------
    QonnxCost
    """
    import sys

    from tqdm import tqdm
    t0 = time.perf_counter()
    counts = net.op_counts()
    if not counts:
        raise QrtlError(f"model {net.path} runs on no unit (nothing to cost)")
    batch = int(net.input_shape[0])
    streams = net.streams(x, vectors, seed)
    by_key = {(s["stage"], s["unit"]): s for s in streams}
    name = Path(net.path).stem
    job_list = []
    for c in counts:
        s = by_key[(c["stage"], c["unit"])]
        job_list.append((c["unit"], c["params"], str(liberty) if isinstance(liberty, Path)
                         else liberty, s["inputs"], vectors, clock_ns,
                         f"{name}:{c['stage']}"))
    with tqdm(total=len(job_list), desc="cost layers", unit="stream", file=sys.stderr,
              disable=not progress) as bar:
        results = pool_map(_cost_job, job_list, max(1, int(jobs)), bar.update)
    layers, units = [], {}
    total_e = 0.0
    for c, r in zip(counts, results):
        ops = c["ops"] // batch
        e = ops * r["energy_pj_per_op"] / 1000.0
        total_e += e
        label = config_label(c["unit"], c["params"])
        layers.append({"stage": c["stage"], "unit": c["unit"], "config": label,
                       "params": c["params"], "ops_per_inference": ops,
                       "energy_pj_per_op": r["energy_pj_per_op"],
                       "energy_nj_per_inference": e, "area_um2": r["area_um2"],
                       "delay_ps": r["delay_ps"], "glitch_fraction": r["glitch_fraction"],
                       "stimulus": r["stimulus"]})
        u = units.setdefault(label, {"config": label, "unit": c["unit"], "params": c["params"],
                                     "area_um2": r["area_um2"], "layers": [],
                                     "ops_per_inference": 0, "energy_nj_per_inference": 0.0})
        u["layers"].append(c["stage"])
        u["ops_per_inference"] += ops
        u["energy_nj_per_inference"] += e
    for row in layers:
        row["share_pct"] = 100.0 * row["energy_nj_per_inference"] / total_e if total_e else 0.0
    unit_rows = [{**u, "layers": " ".join(u["layers"])} for u in units.values()]
    return QonnxCost(model=net.path, params=dict(net.params), library=results[0]["library"],
                     clock_ns=clock_ns, vectors=vectors, seed=seed, batch=batch, layers=layers,
                     units=unit_rows, ops_per_inference=sum(r["ops_per_inference"] for r in layers),
                     energy_nj_per_inference=total_e,
                     area_um2=sum(u["area_um2"] for u in unit_rows), scope=SCOPE,
                     seconds=time.perf_counter() - t0)


def qonnx_figure(costs: list, out, stem: str = "qonnx_cost") -> list[Path]:
    """Energy per inference by layer, stacked by unit, one panel per model: ``stem.png`` and
    ``stem.svg`` under ``out`` (the report's style)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 8, "figure.dpi": 150, "savefig.bbox": "tight"})
    fig, axes = plt.subplots(1, len(costs), figsize=(max(5.0, 3.4 * len(costs)), 2.8),
                             squeeze=False)
    fig.subplots_adjust(wspace=0.4)
    for ax, c in zip(axes[0], costs):
        stages = list(dict.fromkeys(r["stage"] for r in c.layers))
        units = list(dict.fromkeys(r["unit"] for r in c.layers))
        bottom = [0.0] * len(stages)
        big = c.energy_nj_per_inference >= 1e3       # plot in µJ
        div, label = (1e3, "µJ") if big else (1.0, "nJ")
        for u in units:
            vals = [sum(r["energy_nj_per_inference"] for r in c.layers
                        if r["stage"] == s and r["unit"] == u) / div for s in stages]
            ax.bar(range(len(stages)), vals, 0.6, bottom=bottom, label=u)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_ylim(0, max(bottom + [0.0]) * 1.35 or 1.0)     # room for the legend
        ax.set_xticks(range(len(stages)))
        ax.set_xticklabels(stages)
        ax.set_ylabel(f"energy per inference ({label})")
        ax.set_title(f"{Path(c.model).parent.name}/{Path(c.model).name}\n"
                     f"{c.energy_nj_per_inference / div:.4g} {label} in total", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    lib = costs[0].library.get("name", "") if costs else ""
    fig.suptitle(f"Energy per inference by layer and unit, {lib}\n(each layer's own operand "
                 f"stream; memory and data movement not counted)", fontsize=8, y=1.12)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out, stem)


#: The models in the qonnx wheel the report costs: (name, model path, input path), relative
#: to ``qonnx/data/onnx``.
SHIPPED_MODELS = (
    ("floatquant_exec", "floatquant_exec/qonnx_act_weight_fp8.onnx",
     "floatquant_exec/test_data/input.npy"),
    ("espcn_subpixel", "bsd300x3-espcn/subpixel/quant_model.onnx",
     "bsd300x3-espcn/test_data/input_0.pb"),
    ("espcn_nn_resize", "bsd300x3-espcn/nn_resize/quant_model.onnx",
     "bsd300x3-espcn/test_data/input_0.pb"),
)


def shipped_models() -> list[tuple]:
    """``(name, model path, input path)`` of :data:`SHIPPED_MODELS` in the installed qonnx."""
    try:
        import qonnx
    except ImportError:
        raise QrtlError("the QONNX models need the qonnx package (pip install qonnx)") from None
    d = Path(qonnx.__file__).parent / "data" / "onnx"
    out = [(n, d / m, d / i) for n, m, i in SHIPPED_MODELS]
    missing = [str(m) for _, m, _ in out if not m.is_file()]
    if missing:
        raise QrtlError(f"qonnx has no model {missing[0]} (qonnx 1.0 ships it)")
    return out


def qonnx_report_rows(liberty=None, jobs: int = 1, *, vectors: int = DEFAULT_VECTORS,
                      replay: Optional[Callable] = None, samples: int = 1,
                      progress: bool = False) -> dict:
    """Everything the report's "networks from QONNX" section needs, for the models in the
    qonnx wheel (:data:`SHIPPED_MODELS`, on their shipped inputs).

    Returns ``{"models": rows, "layers": rows, "costs": [QonnxCost], "tables": {"qonnx_models":
    Table, "qonnx_layers": Table}}``: per model its lowering (units), operations and energy
    per inference, unit area, agreement with qonnx's executor and, with ``replay``
    (:func:`qrtl.sim.net.replay_qonnx`, given by the caller: reports does not import sim),
    the RTL replay of every operation (the FP8 model) or of ``samples`` output pixels
    (ESPCN); per layer the breakdown of :func:`qonnx_cost`. Write the figure with
    :func:`qonnx_figure`.
    """
    from qrtl.golden.nets.qonnx import agreement, load_qonnx, read_tensor
    models, layers, costs = [], [], []
    for name, path, inp in shipped_models():
        net = load_qonnx(path)
        x = read_tensor(inp)
        agree = agreement(net, x)
        c = qonnx_cost(net, x, liberty=liberty, vectors=vectors, jobs=jobs, progress=progress)
        costs.append(c)
        row = {"model": name, "units": " ".join(dict.fromkeys(r["unit"] for r in c.layers)),
               "ops_per_inference": c.ops_per_inference,
               "energy_nj_per_inference": c.energy_nj_per_inference,
               "area_um2": c.area_um2,
               "agreement": ("identical" if agree.identical else
                             f"{agree.differing} of {agree.outputs} differ, max "
                             f"{agree.max_diff} {agree.unit}"),
               "rtl_ops": None, "rtl_mismatches": None, "rtl_scope": None}
        if replay is not None:
            small = c.ops_per_inference * c.batch <= 2_000_000
            rep = replay(net, x, samples=None if small else samples)
            row.update(rtl_ops=rep.total_ops, rtl_mismatches=rep.total_mismatches,
                       rtl_scope="every operation" if small else f"{samples} output pixel(s)")
        models.append(row)
        layers += [{"model": name, **r} for r in c.layers]
    tables = {
        "qonnx_models": Table(models, caption="Networks from QONNX: agreement, RTL replay and "
                              f"cost per inference ({SCOPE})"),
        "qonnx_layers": Table(layers, ["model", "stage", "unit", "config", "ops_per_inference",
                                       "energy_pj_per_op", "energy_nj_per_inference",
                                       "share_pct", "area_um2"],
                              brief=["model", "stage", "unit", "ops_per_inference",
                                     "energy_pj_per_op", "energy_nj_per_inference", "share_pct"]),
    }
    return {"models": models, "layers": layers, "costs": costs, "tables": tables}
