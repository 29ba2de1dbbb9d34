"""LLM.int8 as bitsandbytes computes it on the CPU, op for op, without its per-call overhead.

bitsandbytes 0.50's `Linear8bitLt` forward on the CPU (inference: `MatMul8bitLt`, every op a pure-torch "default"
kernel) computes, for an input x of dtype D reshaped to rows A (R x K), int8 weight CB (N x K) and per-row weight
absmax SCB (N, float32), threshold t (6.0 in transformers):

1. `A.to(float16)`; outliers are the fp16 entries with |a| >= t (t rounded to fp16); outlier columns are the
   input features holding any outlier over all R rows of the call (so a row's answer depends on its batch);
2. the outlier entries are set to 0; row absmax SCA = max |a| per row (float32); CA = round(a * (127 / SCA))
   computed in float32, cast to int8; CA's outlier columns are set to 0 (when R > 1);
3. the int8 product CA @ CB^T: `torch._int_mm` where bitsandbytes registered its AVX-512 CPU kernel, else a
   float32 matmul of the int8 values (`CB.float()` converted again at every call), truncated to int32;
4. out = int32 * (SCA x SCB) * 6.200124e-05 (= 1/127^2) in float32, `+= bias`, cast to D;
5. with outlier columns: out.addmm(x[:, cols], (CB[:, cols] * SCB / 127)^T), the outlier part in D from the
   original (not fp16-rounded) inputs.

Training mode runs `MatMul8bitFp` instead: x @ (CB * SCB / 127)^T in D.

`Int8MixedLinear` runs the same ops on the same values in the same order, so its output is the same bit for bit
(tests/methods/test_bnb_int8.py). What it saves: the float32 copy of CB made once instead of at every call (it
costs 4 bytes per weight of memory), the fp16 quantization steps done in float32 on the fp16-rounded values (exact:
every step is a comparison, a maximum or a product bitsandbytes already computes in float32), masking only the
outlier columns, and no autograd Function, bitsandbytes op dispatch or warning log record per call.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

_INV_127 = 7.874015718698502e-3  # bitsandbytes' int8_vectorwise_dequant
_INV_127_SQ = 6.200124e-05  # bitsandbytes' int8_mm_dequant


class Int8MixedLinear(nn.Linear):
    """A bitsandbytes Linear8bitLt's CPU forward with its CB / SCB (see the module docstring).

    An nn.Linear as Linear8bitLt is, with the same int8 `weight` (CB), `bias` and state dict (weight, bias, SCB,
    weight_format), so what finds, keeps or saves decoder Linears treats it as the module it replaces.
    """

    def __init__(self, cb: torch.Tensor, scb: torch.Tensor, bias: torch.Tensor | None, threshold: float, int_mm: bool):
        nn.Module.__init__(self)  # nn.Linear's own __init__ would allocate and initialise a float weight
        self.out_features, self.in_features = cb.shape
        self.weight = nn.Parameter(cb, requires_grad=False)  # int8, N x K
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.register_buffer("SCB", scb.float())
        self.register_buffer("cb_float", cb.float(), persistent=False)  # bitsandbytes converts CB at every call
        self.threshold = float(threshold)
        # fp16 tensor >= python float compares against the float rounded to fp16
        self.threshold16 = float(torch.tensor(self.threshold, dtype=torch.float16)) if threshold > 0 else 0.0
        self.int_mm = int_mm

    @classmethod
    def of(cls, mod, int_mm: bool) -> Int8MixedLinear:
        """From a quantized bitsandbytes Linear8bitLt (before or after its first forward moved CB / SCB)."""
        state = mod.state
        if state.has_fp16_weights:
            raise ValueError("Linear8bitLt with has_fp16_weights=True quantizes its weight at every call")
        cb = state.CB if state.CB is not None else mod.weight.CB
        scb = state.SCB if state.SCB is not None else mod.weight.SCB
        if cb is None or scb is None:
            raise ValueError("Linear8bitLt is not quantized yet (no CB / SCB)")
        return cls(cb.detach(), scb.detach(), mod.bias, state.threshold, int_mm)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "weight_format"] = torch.tensor(0, dtype=torch.uint8)  # Linear8bitLt's "row"

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, threshold={self.threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias
        if bias is not None and bias.dtype != x.dtype:  # as Linear8bitLt: its bias keeps the last input's dtype
            bias.data = bias.data.to(x.dtype)
        if self.training:  # bitsandbytes' CPU training path (MatMul8bitFp)
            w = self.weight.to(x.dtype).mul_(self.SCB.unsqueeze(1).mul(1.0 / 127.0))
            return F.linear(x, w, bias)
        shape = (*x.shape[:-1], self.out_features)
        if x.numel() == 0:
            return x.new_empty(shape)
        a = x.reshape(-1, self.in_features)
        h = a.to(torch.float16).float()  # the fp16 values bitsandbytes quantizes, held exactly in float32
        mag = h.abs()
        cols = self._outlier_columns(mag)
        many = a.shape[0] > 1
        if cols is not None and cols.numel():  # outliers are zeroed; every one sits in an outlier column
            if many:  # the row absmax leaves them out; their columns' int8 values are zeroed below anyway
                sub = mag.index_select(1, cols)
                mag.index_copy_(1, cols, sub.masked_fill_(sub >= self.threshold16, 0.0))
            else:  # one row: its outlier columns hold nothing but outliers
                h.index_fill_(1, cols, 0.0)
                mag.index_fill_(1, cols, 0.0)
        row = mag.amax(dim=1, keepdim=True)  # SCA
        q = h.mul_(127.0 / row).round_()
        if many and cols is not None and cols.numel():
            q.index_fill_(1, cols, 0.0)  # bitsandbytes zeroes these int8 columns; zero before the cast: same int8
        ca = q.to(torch.int8)
        if self.int_mm:
            acc = torch._int_mm(ca, self.weight.t()) * (row * self.SCB.unsqueeze(0))
        else:  # float32 products of int8 values are integers: bitsandbytes' cast to int32 changes none
            acc = torch.matmul(ca.float(), self.cb_float.t()).mul_(row * self.SCB.unsqueeze(0))
        out = acc.mul_(_INV_127_SQ)
        if bias is not None:
            out += bias
        out = out.to(x.dtype)
        if cols is not None and cols.numel():
            sub_a = a.index_select(1, cols)
            sub_b = (self.weight.index_select(1, cols) * self.SCB.view(-1, 1) * _INV_127).to(x.dtype).t()
            out = out.addmm(sub_a, sub_b)
        return out.reshape(shape)

    def _outlier_columns(self, mag: torch.Tensor) -> torch.Tensor | None:
        """Input features where any row's |fp16 value| reaches the threshold (None: no decomposition)."""
        if self.threshold <= 0.0:
            return None
        top = mag.amax(dim=0)
        if top.isnan().any():  # a maximum hides a column's outlier behind its NaN; bitsandbytes tests each entry
            hit = (mag >= self.threshold16).any(dim=0)
        else:
            hit = top >= self.threshold16
        return torch.argwhere(hit).view(-1)
