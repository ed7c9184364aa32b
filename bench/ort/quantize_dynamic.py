#!/usr/bin/python3
"""Dynamic int8 quantization of an ONNX model, the way ONNX Runtime's own
onnxruntime.quantization.quantize_dynamic writes it (that tool is a Python
package outside Debian; this needs only python3-onnx): every MatMul whose
right-hand side is a constant [K, N] matrix becomes

    DynamicQuantizeLinear(A) -> A_q (uint8), A_scale, A_zero_point
    MatMulInteger(A_q, B_q, A_zero_point, B_zero_point) -> int32
    Cast(float) * (A_scale * B_scale)

with B quantized once to int8, symmetric, one scale per column (ONNX
Runtime's per_channel=True, its more accurate setting). ONNX Runtime fuses
the pattern into DynamicQuantizeMatMul and runs it on its int8 kernels
(VNNI where the CPU has it). Other operators (attention's products of two
activations, softmax, LayerNorm, GELU) stay fp32, as in ctxembed's int8.

Usage: quantize_dynamic.py IN.onnx OUT.onnx   (prints the MatMuls quantized)
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def quantize(src, dst):
    model = onnx.load(src)
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    nodes, count = [], 0
    for node in graph.node:
        b = node.input[1] if node.op_type == "MatMul" else None
        w = numpy_helper.to_array(weights[b]) if b in weights else None
        if w is None or w.ndim != 2:
            nodes.append(node)
            continue
        count += 1
        amax = np.abs(w).max(axis=0)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        wq = "%s_int8" % b
        graph.initializer.extend([
            numpy_helper.from_array(q, wq),
            numpy_helper.from_array(scale, wq + "_scale"),
            numpy_helper.from_array(np.zeros(q.shape[1], np.int8), wq + "_zero")])
        n = "%s_q%d" % (node.name or "matmul", count)
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [node.input[0]],
                             [n + "_a", n + "_a_scale", n + "_a_zero"]),
            helper.make_node("MatMulInteger",
                             [n + "_a", wq, n + "_a_zero", wq + "_zero"],
                             [n + "_int"]),
            helper.make_node("Cast", [n + "_int"], [n + "_float"],
                             to=TensorProto.FLOAT),
            helper.make_node("Mul", [n + "_a_scale", wq + "_scale"],
                             [n + "_scale"]),
            helper.make_node("Mul", [n + "_float", n + "_scale"],
                             [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for node in graph.node for i in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, dst)
    return count


if __name__ == "__main__":
    print(quantize(sys.argv[1], sys.argv[2]))
