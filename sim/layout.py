"""How a unit's ports are packed into the words of the streaming harness.

Every port gets a byte-aligned field (``ceil(width/8)`` bytes), in port order, so packing
and unpacking are NumPy column copies, with no per-vector Python work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qrtl.golden.bits import from_bytes, nbytes, to_bytes

__all__ = ["Field", "Layout"]


@dataclass(frozen=True)
class Field:
    name: str
    width: int
    signed: bool
    offset: int  # byte offset within the word (little-endian)

    @property
    def nbytes(self) -> int:
        return nbytes(self.width)


class Layout:
    """Byte layout of the harness input and output words for one unit instance."""

    def __init__(self, inst):
        self.inputs = self._fields(inst.inputs)
        self.outputs = self._fields(inst.outputs)
        self.in_bytes = sum(f.nbytes for f in self.inputs) or 1
        self.out_bytes = sum(f.nbytes for f in self.outputs) or 1

    @staticmethod
    def _fields(ports):
        fields, off = [], 0
        for p in ports:
            fields.append(Field(p.name, p.width, p.signed, off))
            off += nbytes(p.width)
        return fields

    def pack(self, values: dict, fields) -> np.ndarray:
        total = sum(f.nbytes for f in fields) or 1
        n = len(next(iter(values.values()))) if values else 0
        words = np.zeros((n, total), np.uint8)
        for f in fields:
            if f.name not in values:
                raise KeyError(f"no values for port {f.name!r}")
            col = values[f.name]
            if len(col) != n:
                raise ValueError(f"port {f.name!r} has {len(col)} values, expected {n}")
            words[:, f.offset:f.offset + f.nbytes] = to_bytes(col, f.width)
        return words

    def unpack(self, words: np.ndarray, fields) -> dict:
        return {f.name: from_bytes(words[:, f.offset:f.offset + f.nbytes], f.width, f.signed)
                for f in fields}

    def pack_inputs(self, values: dict) -> np.ndarray:
        return self.pack(values, self.inputs)

    def unpack_outputs(self, words: np.ndarray) -> dict:
        return self.unpack(words, self.outputs)
