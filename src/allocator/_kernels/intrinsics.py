"""Low-level numba intrinsics used by the kernels."""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _prefetch(typingctx: Any, arr: Any, flat_index: Any) -> Any:
    """Hint the CPU to fetch ``arr.flat[flat_index]`` into cache (no effect on results).

    Emits ``llvm.prefetch`` (read, high locality). ``arr`` must be C-contiguous; an
    index outside the array is harmless, a prefetch never faults.
    """
    if not isinstance(arr, types.Array) or not isinstance(flat_index, types.Integer):
        return None
    sig = types.void(arr, flat_index)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


#: ``prefetch(arr, flat_index)`` callable from jitted code (typed ``Any`` for mypy).
prefetch: Any = _prefetch
