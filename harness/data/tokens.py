"""Corpus -> fixed-length token sequences under the BOS policy."""

from __future__ import annotations

from harness.errors import UsageError


def tokenizer_adds_bos(tok) -> bool:
    ids = tok("a")["input_ids"]
    return tok.bos_token_id is not None and len(ids) > 0 and ids[0] == tok.bos_token_id


def effective_bos(tok, bos: str) -> bool:
    """Whether sequences start with BOS: auto follows the tokenizer's own rule."""
    if bos == "auto":
        return tokenizer_adds_bos(tok)
    return bos == "always" and tok.bos_token_id is not None


def corpus_sequences(tok, corpus, n_sequences: int, seq_len: int, bos: str = "auto", with_docs: bool = False):
    """[N, seq_len] token ids: documents joined by EOS, cut into chunks, N chunks evenly spread.

    With BOS on, each chunk is BOS + (seq_len - 1) corpus tokens. with_docs: also return [N], the
    document each chunk starts in (the unit intervals resample).
    """
    use_bos = effective_bos(tok, bos)
    body = seq_len - 1 if use_bos else seq_len
    stream: list[int] = []
    starts: list[int] = []  # stream offset where each document begins
    for doc in corpus.documents:
        starts.append(len(stream))
        # whole documents are longer than model_max_length on purpose: they are cut into sequences below
        stream += tok(doc, add_special_tokens=False, verbose=False)["input_ids"]
        if tok.eos_token_id is not None:
            stream.append(tok.eos_token_id)
    n_chunks = len(stream) // body
    if n_chunks == 0:
        raise UsageError(
            f"corpus '{corpus.name}' has {len(stream)} tokens, fewer than one sequence of "
            f"{seq_len}; give a larger corpus or a smaller seq_len"
        )
    n = min(n_sequences, n_chunks)
    picks = sorted({round(i * (n_chunks - 1) / max(n - 1, 1)) for i in range(n)}) if n > 1 else [0]
    rows = []
    for c in picks:
        chunk = stream[c * body : (c + 1) * body]
        rows.append(([tok.bos_token_id] if use_bos else []) + chunk)
    import torch  # heavy: only when sequences are built

    ids = torch.tensor(rows, dtype=torch.long)
    if not with_docs:
        return ids
    import bisect

    return ids, [bisect.bisect_right(starts, c * body) - 1 for c in picks]


def probe_index(n_sequences: int, n: int) -> list[int]:
    """The corpus sequences the probes use: n of them (at most all), evenly spread."""
    n = min(n, n_sequences)
    return sorted({round(i * (n_sequences - 1) / max(n - 1, 1)) for i in range(n)})
