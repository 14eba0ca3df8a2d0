"""Plain-numpy twins of :mod:`cimsim.kernels.converters`: same names, same signatures, same outputs."""

from __future__ import annotations


import numpy as np

from ..peripherals.transfer import NL_NONE, NL_POLY, NL_TABLE

__all__ = ['dac_convert', 'adc_tiles', 'row_absmax_bits', 'dac_convert_serial', 'adc_tiles_serial', 'row_absmax_bits_serial']


def _nl_np(code, spec, u):
    if code == NL_NONE:
        return u
    if code == NL_POLY:
        y = np.zeros_like(u)
        for c in spec[::-1]:
            y = y * u + c
        return y
    if code == NL_TABLE:
        n = int(spec[0])
        return np.interp(u, spec[1 : 1 + n], spec[1 + n : 1 + 2 * n])
    return np.tanh(spec[0] * u) / np.tanh(spec[0])


def dac_convert(x, bound, dac, z, x_norm, x_q, clip, want_masks):
    levels = dac.levels
    noise_lsb = dac.noise_lsb
    bd = bound.astype(np.float64)[:, None]
    u = x.astype(np.float64) * (1.0 / bd)
    c = np.zeros(u.shape, bool)
    if not dac.ideal:
        c = np.abs(u) > 1.0
        u = np.rint(np.clip(u, -1.0, 1.0) * levels) / levels
    v = _nl_np(dac.nl_code, dac.nl_spec, u)
    if noise_lsb > 0.0:
        v = v + noise_lsb * z.astype(np.float64) / levels
    x_norm[...] = v
    if want_masks:
        x_q[...] = v * bd
        clip[...] = c


def bf16_upper(u: np.ndarray) -> np.ndarray:
    """float32 bit patterns (uint32) rounded to the nearest bfloat16 (ties to even), as uint32
    float32 bit patterns with the low 16 bits clear."""
    u = u.astype(np.uint32)
    return (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)


def adc_tiles(part, var, var16, z_read, z_conv, coef, k0, rowscale, sign, adc, acc, y, sat, want_sat, finish):
    n_t = part.shape[0]
    levels, nl_code, nl_spec, inl, noise_lsb = adc.levels, adc.nl_code, adc.nl_spec, adc.inl, adc.noise_lsb
    L = float(levels)
    linear = adc.linear
    coef = coef[:, k0 : k0 + n_t]
    for k in range(n_t):
        val = part[k].astype(np.float64)
        if var16.shape[0] > 0:
            vv = (bf16_upper(var16[k]) if var16.itemsize == 4 else var16[k].astype(np.uint32) << np.uint32(16)).view(np.float32)
            val = val + np.sqrt(np.maximum(vv, np.float32(0.0))).astype(np.float64) * z_read[k].astype(np.float64)
        elif var.shape[0] > 0:
            val = val + np.sqrt(np.maximum(var[k].astype(np.float64), 0.0)) * z_read[k].astype(np.float64)
        if linear:
            w = val * coef[0, k] + coef[1, k]
        else:
            u = coef[4, k] * _nl_np(nl_code, nl_spec, val * coef[3, k])
            if adc.ideal:
                acc += u * coef[5, k]
                continue
            w = u * L + coef[1, k]
            if noise_lsb > 0.0:
                w = w + noise_lsb * z_conv[k].astype(np.float64)
        if want_sat:
            sat[:, k0 + k, :] |= (w > L) | (w < -L)
        c = np.minimum(np.maximum(np.rint(w), -L), L)
        if inl.shape[0] > 0:
            c = c + inl[c.astype(np.int64) + levels]
        acc += c * coef[2, k]
    if finish:
        y[...] = (y.astype(np.float64) + acc * (rowscale.astype(np.float64) * sign)[:, None]).astype(y.dtype)


def row_absmax_bits(xbits, mask, seg, out):
    for k in range(out.shape[1]):
        out[:, k] = (xbits[:, k * seg : (k + 1) * seg] & mask).max(axis=1, initial=0)


dac_convert_serial = dac_convert
adc_tiles_serial = adc_tiles
row_absmax_bits_serial = row_absmax_bits
