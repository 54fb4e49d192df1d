"""The text model's GGUF with every tensor dequantised to float32, for llama.cpp.

llama.cpp reading the shipped Q4_1 file multiplies against activations it quantises to
8 bits; our ONNX graph runs the dequantised weights in fp32. The same weights in an F32
GGUF make llama.cpp an exact reference for our network (greedy tokens compared), while
the Q4_1 file stays the reference for speed.
"""

from __future__ import annotations

import pathlib

import gguf
import numpy as np
from gguf.quants import dequantize


def write_f32(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """Writes `target` (once) from `source`: same metadata, float32 tensors."""
    if target.exists():
        return target
    reader = gguf.GGUFReader(str(source))
    arch = str(reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    writer = gguf.GGUFWriter(str(target) + ".part", arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for tensor in reader.tensors:
        data = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        writer.add_tensor(tensor.name, data.reshape(shape), raw_dtype=gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    pathlib.Path(str(target) + ".part").rename(target)
    return target
