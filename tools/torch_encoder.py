"""A ctxembed encoder as a PyTorch module: the reference implementation.

`TorchEncoder(config, vocab=..., fasttext_model=...)` builds, from the same
config.json dictionary ctxembed reads, an nn.Module whose parameters carry
exactly the state_dict() names the exporter writes: nn.Embedding at the
table's tensor prefix, nn.LSTM / nn.GRU at each module's prefix, nn.Linear
for the projection. `encode(token_lists)` runs it the way ctxembed must
(packed sequences, so each sentence is unaffected by the batch) and returns
the top module's per-token outputs and the pooled, projected, normalised
sentence vectors. `DualEncoder` adds Object2Vec's comparator.

Training code (tools/train/) uses these classes, tests and benchmarks use
them as the reference.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_SPACE = set(" \t\n\r\v\f")


def tokenize(text, kind="whitespace", lowercase=False):
    """ctxembed's tokenizers (model/tokenizer.h), in Python."""
    tokens, current = [], []
    for ch in text:
        if ch in _SPACE or (kind == "words_and_punct" and ch in _PUNCT):
            if current:
                tokens.append("".join(current))
                current = []
            if ch not in _SPACE:
                tokens.append(ch)
        else:
            current.append(ch)
    if current:
        tokens.append("".join(current))
    if lowercase:
        tokens = [t.translate(_ASCII_LOWER) for t in tokens]
    return tokens


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _set_module(root, prefix, module):
    """Registers `module` so that its parameters are named "prefix.*"."""
    parts = prefix.split(".")
    parent = root
    for part in parts[:-1]:
        if not hasattr(parent, part):
            parent.add_module(part, nn.Module())
        parent = getattr(parent, part)
    parent.add_module(parts[-1], module)


class TorchEncoder(nn.Module):
    """One tower. `config` is a tower dict (embedding, encoder, pooling,
    projection, normalize); pass `root` to register the parameters on a
    shared parent module (for dual encoders)."""

    def __init__(self, config, vocab=None, fasttext_model=None,
                 embedding_dim=None, projection_dim=None, root=None,
                 unk_token="<unk>"):
        super().__init__()
        root = self if root is None else root
        self._root = [root]
        self.config = config
        emb = config["embedding"]
        self.kind = emb["kind"]
        if self.kind == "table":
            self.vocab = {w: i for i, w in enumerate(vocab)}
            self.unk = self.vocab.get(emb.get("unk_token", unk_token))
            # Plain attributes (not registered here): parameters are named by
            # their config prefix on `root`, as the exporter expects.
            object.__setattr__(self, "_embed",
                               nn.Embedding(len(vocab), embedding_dim))
            prefix = emb["tensor"].rsplit(".", 1)[0]
            _set_module(root, prefix, self._embed)
            dim = embedding_dim
        else:
            self.ft = fasttext_model
            dim = fasttext_model.get_dimension()
        self.rnns = []
        for m in config.get("encoder", []):
            cls = nn.LSTM if m["kind"] == "lstm" else nn.GRU
            rnn = cls(m["input_size"], m["hidden_size"],
                      num_layers=m.get("num_layers", 1),
                      bidirectional=m.get("bidirectional", False),
                      batch_first=True)
            _set_module(root, m["prefix"], rnn)
            skip = ("residual" if m.get("residual") else
                    "concat" if m.get("concat_input") else None)
            self.rnns.append((rnn, skip))
            dim = (m["input_size"] if skip == "concat" else 0) + \
                m["hidden_size"] * (2 if m.get("bidirectional") else 1)
        self.token_dim = dim
        object.__setattr__(self, "_projection", None)
        if "projection" in config:
            object.__setattr__(self, "_projection",
                               nn.Linear(dim, projection_dim))
            _set_module(root, config["projection"]["prefix"], self._projection)
            dim = projection_dim
        self.output_dim = dim

    def word_vectors(self, tokens):
        if self.kind == "table":
            ids = [self.vocab.get(t, self.unk) for t in tokens]
            if any(i is None for i in ids):
                raise KeyError("unknown token and no unk_token")
            return self._embed(torch.tensor(ids, dtype=torch.long))
        vectors = np.array([self.ft.get_word_vector(t) for t in tokens],
                           dtype=np.float32)
        return torch.from_numpy(vectors).reshape(len(tokens), -1)

    def encode(self, token_lists, pooling=None):
        """-> (list of [len x token_dim] tensors, [batch x output_dim])."""
        pooling = pooling or self.config.get(
            "pooling", "mean" if self.rnns else "fasttext")
        lengths = [len(t) for t in token_lists]
        nonempty = [i for i, n in enumerate(lengths) if n > 0]
        width = max(lengths) if lengths else 0
        x = torch.zeros(len(token_lists), max(width, 1), self._input_dim())
        for i in nonempty:
            x[i, :lengths[i]] = self.word_vectors(token_lists[i])
        last = None
        if nonempty:
            sub = x[nonempty]
            sub_len = torch.tensor([lengths[i] for i in nonempty])
            for rnn, skip in self.rnns:
                packed = pack_padded_sequence(sub, sub_len, batch_first=True,
                                              enforce_sorted=False)
                out, h = rnn(packed)
                out, _ = pad_packed_sequence(out, batch_first=True,
                                             total_length=sub.shape[1])
                h = h[0] if isinstance(rnn, nn.LSTM) else h
                last = (torch.cat([h[-2], h[-1]], dim=1)
                        if rnn.bidirectional else h[-1])
                if skip == "residual":
                    sub = out + sub
                elif skip == "concat":
                    sub = torch.cat([sub, out], dim=2)
                else:
                    sub = out
        tokens = [torch.zeros(0, self.token_dim) for _ in token_lists]
        pooled = torch.zeros(len(token_lists), self.token_dim)
        for j, i in enumerate(nonempty):
            t = sub[j, :lengths[i]] if self.rnns else x[i, :lengths[i]]
            tokens[i] = t
            pooled[i] = self._pool(t, pooling, None if last is None else last[j])
        if self._projection is not None:
            pooled = self._projection(pooled)
        if self.config.get("normalize"):
            pooled = F.normalize(pooled, dim=1)
        return tokens, pooled

    def _input_dim(self):
        return (self._embed.embedding_dim if self.kind == "table"
                else self.ft.get_dimension())

    @staticmethod
    def _pool(t, pooling, last):
        if pooling == "mean":
            return t.mean(dim=0)
        if pooling == "max":
            return t.max(dim=0).values
        if pooling == "last":
            return last
        if pooling == "fasttext":
            norms = t.norm(dim=1, keepdim=True)
            keep = norms.squeeze(1) > 0
            if not keep.any():
                return torch.zeros(t.shape[1])
            return (t[keep] / norms[keep]).mean(dim=0)
        raise ValueError(pooling)


class DualEncoder(nn.Module):
    """Object2Vec-style: towers enc0 and enc1 and an MLP comparator over
    [u, v, |u - v|, u * v]."""

    def __init__(self, config, tower_args, comparator_sizes=None):
        """`tower_args`: {"enc0": kwargs, "enc1": kwargs} for TorchEncoder
        (vocab, fasttext_model, embedding_dim, projection_dim)."""
        super().__init__()
        self.config = config
        # Not registered as children: their parameters live on this module
        # under their config prefixes.
        for name in ("enc0", "enc1"):
            tower = TorchEncoder(config["towers"][name], root=self,
                                 **tower_args[name])
            object.__setattr__(self, name, tower)
        self.layers = []
        cmp = config.get("comparator")
        if cmp:
            width = 4 * self.enc0.output_dim
            for layer, size in zip(cmp["layers"], comparator_sizes):
                linear = nn.Linear(width, size)
                _set_module(self, layer["prefix"], linear)
                self.layers.append((linear, layer.get("activation", "none")))
                width = size

    def score(self, u, v):
        x = torch.cat([u, v, (u - v).abs(), u * v], dim=1)
        for linear, act in self.layers:
            x = linear(x)
            x = {"relu": torch.relu, "tanh": torch.tanh,
                 "sigmoid": torch.sigmoid}.get(act, lambda y: y)(x)
        out = self.config["comparator"].get("output", "identity")
        if out == "sigmoid":
            return torch.sigmoid(x[:, 0])
        if out == "softmax":
            return torch.softmax(x, dim=1)[:, self.config["comparator"].get(
                "score_class", 1)]
        return x[:, 0]
