"""The lowest layer: bit-exact NumPy golden models of every qrtl unit (vectorised, integer
bit patterns), FP formats, the networks (models, data, training, operand streams), and the
foundations every layer above uses: the error type (:mod:`.errors`), parameter
declarations (:mod:`.params`) and the one result cache (:mod:`.cache`). Imports NumPy and
the standard library only (never Amaranth, never a higher layer)."""
