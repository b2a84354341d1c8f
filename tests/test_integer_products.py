"""The exact integer products of allele counts (stats/integer_products.py), checked against the onnx package's own
model builder and against NumPy's int64 products."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from biolake.stats.integer_products import count_products, matmul_integer_model


def test_matmul_integer_model__is_the_model_onnx_helper_builds():
    values = [helper.make_tensor_value_info(name, kind, [None, None])
              for name, kind in (("A", TensorProto.UINT8), ("B", TensorProto.INT8), ("Y", TensorProto.INT32))]
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "count_products",
                              values[:2], values[2:])
    reference = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(onnx.load_from_string(matmul_integer_model()))
    assert matmul_integer_model() == reference.SerializeToString()


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 2), (130, 1001, 64), (700, 4099, 33)])
def test_count_products__equal_int64_products(shape):
    rows, samples, columns = shape
    rng = np.random.default_rng(rows)
    a = rng.integers(0, 3, (rows, samples)).astype(np.uint8)
    b = rng.integers(0, 3, (samples, columns)).astype(np.uint8)
    found = count_products(a, b)
    assert found.dtype == np.int32
    np.testing.assert_array_equal(found, a.astype(np.int64) @ b.astype(np.int64))


def test_count_products__the_largest_counts_stay_exact():
    a, b = np.full((2, 70_000), 2, np.uint8), np.full((70_000, 3), 2, np.uint8)   # every product 4
    np.testing.assert_array_equal(count_products(a, b), np.full((2, 3), 280_000))
