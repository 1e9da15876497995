"""A minimal safetensors writer and reader (numpy + torch), written for the reference goldens.

Format: 8-byte little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the raw
little-endian tensor bytes. The header is space-padded to a multiple of 8 bytes like the reference
implementation does. Only F32, F16 and BF16 are needed here.
"""
import json
import struct

import numpy as np
import torch

_TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def stored(t: torch.Tensor, dtype: str) -> torch.Tensor:
    """The float32 values a tensor has after a round trip through `dtype` (what a reader sees)."""
    return t.detach().to(_TORCH[dtype]).to(torch.float32)


def _raw(t: torch.Tensor, dtype: str) -> bytes:
    t = t.detach().contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        # numpy has no bfloat16: reinterpret the 16-bit patterns.
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(f"unsupported dtype {dtype}")


def write(path: str, tensors: dict, dtype: str = "F32", metadata=None) -> None:
    """Writes `tensors` (name -> torch.Tensor) with every tensor stored as `dtype`, names sorted."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name in sorted(tensors):
        blob = _raw(tensors[name], dtype)
        header[name] = {
            "dtype": dtype,
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read(path: str) -> dict:
    """name -> float32 torch.Tensor."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        if info["dtype"] == "F32":
            arr = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        elif info["dtype"] == "F16":
            arr = torch.from_numpy(np.frombuffer(raw, dtype="<f2").astype(np.float32))
        else:
            bits = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy())
            arr = bits.view(torch.bfloat16).to(torch.float32)
        out[name] = arr.reshape(info["shape"])
    return out
