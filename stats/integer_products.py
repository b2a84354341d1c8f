"""Exact matrix products of allele counts in 8-bit integers, at the CPU's integer rate.

Hard calls are 0, 1 or 2, so products of counts over samples are small integers: an int8 × uint8
product accumulated in int32 is exact (up to 2³¹ / 4 samples), and CPUs multiply 8-bit integers
several times faster than float32 (AVX-512 VNNI and AVX2 dot-product instructions: on the
development machine, 290–380 G integer operations per second on one core at LD windows'
shapes, against 91–99 GFLOP/s for float32 sgemm). NumPy has no integer BLAS, so the product
is ONNX Runtime's ``MatMulInteger`` (its MLAS kernels choose the instructions the CPU has).

The one-node ONNX model is written here in protobuf's wire format (a few dozen bytes, fields
named after onnx.proto) rather than built with the ``onnx`` package, whose import alone takes
0.7 s; ``tests/test_integer_products.py`` checks the bytes against ``onnx.helper``'s model.

Examples
--------
>>> a = np.array([[0, 1, 2], [2, 2, 1]], np.uint8)
>>> count_products(a, np.ascontiguousarray(a.T)).tolist()
[[5, 4], [4, 9]]
"""

from __future__ import annotations

import functools

import numpy as np

# onnx.proto's TensorProto.DataType codes
_UINT8, _INT8, _INT32 = 2, 3, 6
_OPSET = 13             # MatMulInteger is in the default domain since opset 10
_IR_VERSION = 8


def count_products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` as int32, exactly: ``a`` is m × k uint8, ``b`` k × n uint8 or int8 with every value below 128
    (allele counts); both C-contiguous. One thread: callers run one product per core."""
    assert a.dtype == np.uint8 and b.dtype in (np.uint8, np.int8) and a.shape[1] == b.shape[0], (a.dtype, b.dtype)
    return _session().run(None, {"A": np.ascontiguousarray(a), "B": np.ascontiguousarray(b).view(np.int8)})[0]


@functools.cache
def _session():
    """This process's ONNX Runtime session of the one-node model, single-threaded and quiet."""
    import onnxruntime   # imported where used: only integer-product jobs pay for it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(matmul_integer_model(), options, providers=["CPUExecutionProvider"])


def matmul_integer_model() -> bytes:
    """The serialized ONNX ModelProto of ``Y = MatMulInteger(A, B)``: A uint8 and B int8 of any 2-d shape,
    Y int32 (field numbers from onnx.proto)."""
    def tensor(name: str, element_type: int) -> bytes:        # ValueInfoProto
        dims = _field(1, b"") * 2                              # TensorShapeProto.dim × 2, sizes unknown
        tensor_type = _key(1, 0) + _varint(element_type) + _field(2, dims)   # TypeProto.Tensor
        return _field(1, name.encode()) + _field(2, _field(1, tensor_type))
    node = (_field(1, b"A") + _field(1, b"B") + _field(2, b"Y") + _field(4, b"MatMulInteger"))   # NodeProto
    graph = (_field(1, node) + _field(2, b"count_products") + _field(11, tensor("A", _UINT8))
             + _field(11, tensor("B", _INT8)) + _field(12, tensor("Y", _INT32)))               # GraphProto
    opset = _field(1, b"") + _key(2, 0) + _varint(_OPSET)     # OperatorSetIdProto: the default domain
    return _key(1, 0) + _varint(_IR_VERSION) + _field(7, graph) + _field(8, opset)            # ModelProto


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (a string, bytes or a nested message)."""
    return _key(number, 2) + _varint(len(payload)) + payload


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
