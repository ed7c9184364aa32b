"""Shared pieces of the training scripts."""
import struct


def slim_fasttext(src, dst, input_matrix=None):
    """Copies a fastText .bin without its output matrix (0 rows): word
    vectors need only the input matrix, and the file halves in size. fastText
    itself still loads the result. `input_matrix` (a float32 array of the
    input matrix's shape) replaces the input matrix's values."""
    with open(src, "rb") as f:
        data = f.read()
    pos = 8  # magic, version
    dim = struct.unpack_from("<i", data, pos)[0]
    pos += 12 * 4 + 8  # Args: 12 int32 and a double
    size, = struct.unpack_from("<i", data, pos)
    pos += 12
    pos += 8  # ntokens
    prune, = struct.unpack_from("<q", data, pos)
    pos += 8
    for _ in range(size):
        pos = data.index(b"\0", pos) + 1 + 8 + 1
    pos += max(prune, 0) * 8
    assert data[pos] == 0, "quantized models are not supported"
    rows, cols = struct.unpack_from("<qq", data, pos + 1)
    end = pos + 1 + 16 + rows * cols * 4
    with open(dst, "wb") as f:
        if input_matrix is None:
            f.write(data[:end])
        else:
            if tuple(input_matrix.shape) != (rows, cols):
                raise ValueError("input matrix %s, the file has %dx%d"
                                 % (input_matrix.shape, rows, cols))
            f.write(data[:pos + 1 + 16])
            f.write(input_matrix.astype("<f4").tobytes())
        f.write(b"\0" + struct.pack("<qq", 0, dim))

