"""The networks: accuracy of the golden models and bit-exact replay on the RTL.

``qrtl.nets.load_qonnx("model.onnx")`` imports a user's QONNX network onto the same units
(:mod:`qrtl.golden.nets.qonnx`); :func:`agreement` compares it with qonnx's reference
executor and :func:`replay_qonnx` replays its operations on the RTL.

``qrtl.nets.replay("int8", scheme="shift", images=20)`` runs the int8 digits MLP with
``quant_shift`` requantization on the first 20 test images, once on the golden models and
once with every unit operation on Verilator, and says whether they agree.
"""

from __future__ import annotations

from typing import Optional

from qrtl.golden import nets as _nets
from qrtl.golden.nets.qonnx import Agreement, QonnxNet, read_tensor
from qrtl.golden.nets.qonnx import agreement as _agreement
from qrtl.golden.nets.qonnx import load_qonnx as _load_qonnx
from qrtl.reports.qonnx_cost import QonnxCost
from qrtl.reports.qonnx_cost import qonnx_cost as _qonnx_cost
from qrtl.reports.qonnx_cost import qonnx_report_rows as _qonnx_report_rows
from qrtl.sim.net import QonnxReplay, Replay
from qrtl.sim.net import replay as _replay
from qrtl.sim.net import replay_qonnx as _replay_qonnx

__all__ = ["names", "accuracy", "replay", "Replay", "load_qonnx", "agreement", "replay_qonnx",
           "read_tensor", "QonnxNet", "Agreement", "QonnxReplay", "qonnx_cost", "QonnxCost",
           "qonnx_report_rows", "export_qonnx", "round_trip"]


def names() -> list[str]:
    """The networks: ``float``, ``bnn``, ``int8``, ``fp8``, ``abc``, ``binaryduo``."""
    return list(_nets.NETWORKS)


def accuracy(name: str, images: Optional[int] = None, **params) -> float:
    """Test accuracy of network ``name`` (golden model) on the first ``images`` test images
    (default: all 450); ``params`` as for :func:`replay`."""
    return _nets.run(name, params, images)["accuracy"]


def replay(name: str, images: Optional[int] = None, progress: bool = False, **params) -> Replay:
    """Run network ``name`` on the golden models and on the RTL, and compare them.

    Parameters
    ----------
    name : str
        ``bnn``, ``int8``, ``fp8``, ``abc`` or ``binaryduo`` (``float`` runs on no unit).
    images : int, optional
        The first test images (default: the whole test split).
    progress : bool
        A progress bar on stderr.
    **params
        The network's parameters: ``scheme`` (int8: ``shift``, ``fixedpoint``,
        ``float``); ``fmt``, ``acc``, ``chunk`` (fp8); ``mode`` (binaryduo: ``ternary``,
        ``decoupled``).

    Returns
    -------
    Replay
        ``accuracy``, ``rtl_accuracy``, ``total_ops``, ``total_mismatches``, ``bit_exact``...
    """
    return _replay(name, params, images, progress=progress)


def load_qonnx(path, **params) -> QonnxNet:
    """Import a QONNX model (Brevitas, QKeras, ... export) onto the units' golden models.

    Parameters
    ----------
    path : str or Path
        The ONNX file.
    **params
        ``scheme`` (``fixedpoint`` default, ``float``): the requantizer where a layer's scale
        is not a power of two (power-of-two scales always use ``quant_shift``);
        ``variant`` (``double`` default, ``single``): quant_fixedpoint's rounding; ``acc``
        (``fp32``, ``fp16``) and ``chunk``: ``fp8_dot``'s accumulation for FP8 layers;
        ``input_bits`` (8): the assumed unsigned input quantizer (scale ``1/(2**bits-1)``)
        when the graph input feeds a layer unquantized.

    Returns
    -------
    QonnxNet
        ``lowering()`` (layers -> units), ``run(x)`` (golden inference: ``output`` float32
        as the reference executor produces it), ``forward(x, samples=N)`` (recorded unit
        operations), ``op_counts()``.
    """
    return _load_qonnx(path, **params)


def agreement(net: QonnxNet, x) -> Agreement:
    """Compare ``net``'s golden output on input ``x`` with qonnx's reference executor
    (``execute_onnx``): identical, or the share of outputs that differ and by how many LSBs
    of the output quantizer (float32 ulps for an unquantized output), per layer too."""
    return _agreement(net, x)


def replay_qonnx(net: QonnxNet, x, samples: Optional[int] = None, seed: int = 0,
                 progress: bool = False) -> QonnxReplay:
    """Replay ``net``'s unit operations on Verilator: every one (``samples=None``) or those
    that ``samples`` seeded output pixels depend on; ``bit_exact`` says 0 mismatches."""
    return _replay_qonnx(net, x, samples=samples, seed=seed, progress=progress)


def qonnx_cost(net: QonnxNet, x, *, liberty=None, vectors: Optional[int] = None,
               clock_ns: Optional[float] = None, seed: int = 0, jobs: int = 1,
               progress: bool = False) -> QonnxCost:
    """Cost of one inference of ``net`` on its units, by layer.

    Parameters
    ----------
    net : QonnxNet
        From :func:`load_qonnx`.
    x : array
        The input (the model's input shape) whose operand streams are measured.
    liberty : str or Path, optional
        The cell library (default: the shipped SKY130 HD subset).
    vectors : int, optional
        Operations simulated per layer and unit (default 4096).
    clock_ns : float, optional
        Clock period of the leakage term (default 10 ns).
    seed : int
        Where in the output each layer's stream starts.
    jobs : int
        Measurements in parallel.

    Returns
    -------
    QonnxCost
        ``layers`` (operations, energy per operation measured on the layer's own operand
        stream, energy per inference, share), ``units`` (area of one instance of each unit
        configuration), ``energy_nj_per_inference``, ``table()``, ``write(dir)`` (CSV,
        Markdown, bar plot). Memory and data movement are not counted (``scope``).
    """
    from qrtl.reports.cost import DEFAULT_CLOCK_NS, DEFAULT_VECTORS
    return _qonnx_cost(net, x, liberty=liberty,
                       vectors=DEFAULT_VECTORS if vectors is None else vectors,
                       clock_ns=DEFAULT_CLOCK_NS if clock_ns is None else clock_ns, seed=seed,
                       jobs=jobs, progress=progress)


def export_qonnx(name: str, path, batch: int = 1, **params):
    """Write digits network ``name`` (``bnn``, ``int8``, ``fp8``) with ``params`` as a QONNX
    model at ``path`` (``onnx.helper`` and qonnx's operators; see
    :mod:`qrtl.golden.nets.qonnx_export`); returns the path. Its input ``x`` (``batch``,
    64) is ``pixels / 16`` (int8, fp8) or the pixels (bnn)."""
    from qrtl.golden.nets.qonnx_export import export_qonnx as _export
    return _export(name, path, params, batch)


def round_trip(name: str, folder=".", images: Optional[int] = None, rtl_images: int = 0,
               **params) -> dict:
    """Export network ``name`` to QONNX under ``folder``, import it back, and compare.

    Parameters
    ----------
    name : str
        ``bnn``, ``int8`` or ``fp8``.
    folder : str or Path
        Where the ONNX file goes (``NAME_PARAMS.onnx``).
    images : int, optional
        Test images whose predictions are compared (default: all 450).
    rtl_images : int
        Replay the imported network's operations of that many test images on Verilator.
    **params
        The network's parameters (``scheme``; ``fmt``, ``acc``, ``chunk``).

    Returns
    -------
    dict
        ``predictions_identical``, ``differing_predictions``, ``accuracy``,
        ``imported_accuracy``, ``same_units``, ``ops_differing`` (operations of the first
        images whose operands differ from the network's), ``lowering``, ``path``, and with
        ``rtl_images`` the replay's ``rtl_ops``, ``rtl_mismatches``, ``rtl_bit_exact``.
    """
    from qrtl.golden.nets.data import load_split
    from qrtl.golden.nets.qonnx_export import import_params, network_input
    from qrtl.golden.nets.qonnx_export import round_trip as _round_trip
    r = _round_trip(name, params, folder, images)
    if rtl_images:
        net = _load_qonnx(r["path"], **import_params(name, r["params"]))
        rep = _replay_qonnx(net, network_input(name, load_split().x_test[:int(rtl_images)]))
        r.update(rtl_images=int(rtl_images), rtl_ops=rep.total_ops,
                 rtl_mismatches=rep.total_mismatches, rtl_bit_exact=rep.bit_exact)
    return r


def qonnx_report_rows(liberty=None, jobs: int = 1, rtl: bool = True, samples: int = 1,
                      progress: bool = False) -> dict:
    """The report's "networks from QONNX" rows, tables and costs for the models in the
    qonnx wheel (:func:`qrtl.reports.qonnx_cost.qonnx_report_rows`), with ``rtl`` the RTL
    replay of every operation of the FP8 model and of ``samples`` output pixels of each
    ESPCN model. Write the plot with ``qrtl.reports.qonnx_cost.qonnx_figure(r["costs"],
    out)``."""
    return _qonnx_report_rows(liberty, jobs, replay=_replay_qonnx if rtl else None,
                              samples=samples, progress=progress)
