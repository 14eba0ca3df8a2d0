"""Converters: the input DAC, the per-tile ADC and the row abs-max of the DAC's dynamic range.

The DAC and ADC kernels take the converter's plan (:class:`cimsim.peripherals.DacPlan`,
:class:`cimsim.peripherals.AdcPlan`, whose docstrings give the conversion equations) as one
NamedTuple argument.  Quantisers compile without fastmath, so rounding at a level boundary
matches the twins exactly.  Jitted kernels; their plain-numpy twins, same names and signatures,
are in :mod:`cimsim.kernels.converters_ref`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..peripherals.transfer import NL_NONE, NL_POLY, NL_TABLE
from ._jit import FM, MVM_PARALLEL, serial_copy

__all__ = ['dac_convert', 'adc_tiles', 'row_absmax_bits', 'dac_convert_serial', 'adc_tiles_serial', 'row_absmax_bits_serial']


@njit(cache=True, inline="always", fastmath=FM)
def _interp(x, xs, ys, n):
    if x <= xs[0]:
        return ys[0]
    if x >= xs[n - 1]:
        return ys[n - 1]
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid
        else:
            hi = mid
    t = (x - xs[lo]) / (xs[hi] - xs[lo])
    return ys[lo] + t * (ys[hi] - ys[lo])


@njit(cache=True, inline="always")
def _nl(code, spec, u):
    if code == NL_NONE:
        return u
    if code == NL_POLY:
        y = 0.0
        for i in range(spec.shape[0] - 1, -1, -1):
            y = y * u + spec[i]
        return y
    if code == NL_TABLE:
        n = int(spec[0])
        return _interp(u, spec[1 : 1 + n], spec[1 + n : 1 + 2 * n], n)
    return math.tanh(spec[0] * u) / math.tanh(spec[0])


@njit(cache=True, parallel=MVM_PARALLEL)
def dac_convert(x, bound, dac, z, x_norm, x_q, clip, want_masks):
    """Input DAC of ``x [B, in]`` with row bounds ``bound [B]`` (equations: :class:`~cimsim.peripherals.DacPlan`).

    ``dac`` the plan; ``z [B, in]`` standard normals (empty unless ``dac.noise_lsb > 0``; pass
    ``dac.without_noise()`` to convert without); outputs x_norm, and with ``want_masks`` x_q, clip.
    """
    n_b, n_in = x.shape
    ideal = dac.ideal
    levels = dac.levels
    nl_code = dac.nl_code
    nl_spec = dac.nl_spec
    noise_lsb = dac.noise_lsb
    fast = not ideal and nl_code == NL_NONE and noise_lsb == 0.0
    Lf = np.float64(levels)
    for b in prange(n_b):
        bd = bound[b]
        inv = 1.0 / bd
        if fast:
            # linear and noiseless: the same arithmetic as below in flat, branch-free loops that vectorise
            if want_masks:
                for j in range(n_in):
                    u = x[b, j] * inv
                    clip[b, j] = abs(u) > 1.0
                    v = np.rint(min(max(u, -1.0), 1.0) * Lf) / Lf
                    x_norm[b, j] = v
                    x_q[b, j] = v * bd
            else:
                for j in range(n_in):
                    u = min(max(x[b, j] * inv, -1.0), 1.0)
                    x_norm[b, j] = np.rint(u * Lf) / Lf
            continue
        for j in range(n_in):
            u = x[b, j] * inv
            c = False
            if not ideal:
                if u > 1.0:
                    u = 1.0
                    c = True
                elif u < -1.0:
                    u = -1.0
                    c = True
                u = np.rint(u * levels) / levels
            v = _nl(nl_code, nl_spec, u) if nl_code != NL_NONE else u
            if noise_lsb > 0.0:
                v = v + noise_lsb * z[b, j] / levels
            x_norm[b, j] = v
            if want_masks:
                x_q[b, j] = v * bd
                clip[b, j] = c


@njit(cache=True, inline="always")
def _convert_linear(val, c0, c1, c2, L, a, s, want_sat):
    """One row of a tile through the linear ADC plan, without per-read noise: w = val c0 + c1
    (float64, ``val`` the row's partial sums, read in place), s |= |w| > L (when ``want_sat``),
    a += clip(rint(w), -L, L) c2.  Saturation is OR-ed in unconditionally: a conditional store
    stops the loop from vectorising."""
    n = a.shape[0]
    if want_sat:
        for o in range(n):
            wo = np.float64(val[o]) * c0[o] + c1[o]
            s[o] = s[o] | (abs(wo) > L)
            a[o] += min(max(np.rint(wo), -L), L) * c2[o]
    else:
        for o in range(n):
            a[o] += min(max(np.rint(np.float64(val[o]) * c0[o] + c1[o]), -L), L) * c2[o]


@njit(cache=True, inline="always")
def _convert_linear_noisy(p, v, zr, wide, c0, c1, c2, L, a, s, want_sat):
    """:func:`_convert_linear` of a row with its per-read noise added in the same loop:
    val = p + sqrt(v) zr, the square root in float64 (``wide``: a float variance) or in float32
    (the bfloat16 variance, as float32 ``v``).  Apart from it, not one function with a noise
    flag: a branch inside the loop stops it from vectorising."""
    n = a.shape[0]
    if want_sat:
        for o in range(n):
            sd = math.sqrt(max(np.float64(v[o]), 0.0)) if wide else np.float64(np.sqrt(max(v[o], np.float32(0.0))))
            wo = (np.float64(p[o]) + sd * np.float64(zr[o])) * c0[o] + c1[o]
            s[o] = s[o] | (abs(wo) > L)
            a[o] += min(max(np.rint(wo), -L), L) * c2[o]
    else:
        for o in range(n):
            sd = math.sqrt(max(np.float64(v[o]), 0.0)) if wide else np.float64(np.sqrt(max(v[o], np.float32(0.0))))
            a[o] += min(max(np.rint((np.float64(p[o]) + sd * np.float64(zr[o])) * c0[o] + c1[o]), -L), L) * c2[o]


@njit(cache=True, parallel=MVM_PARALLEL)
def adc_tiles(part, var, var16, z_read, z_conv, coef, k0, rowscale, sign, adc, acc, y, sat, want_sat, finish):
    """ADC conversion of a group of G input tiles k0 .. k0 + G - 1 of one conversion stream,
    summed over the tiles into the float64 accumulator acc; with ``finish``, acc then goes into y.

    ``adc``: the plan (equations: :class:`~cimsim.peripherals.AdcPlan`).  part ``[G, B, O]``
    partial sums (normalised units) of the group's tiles; per-read variance ``var [G, B, O]``
    (float) or ``var16 [G, B, O]`` (bfloat16 bit patterns, uint16: the value is the float32 with
    these as its upper 16 bits; or float32 bit patterns, uint32, which the kernel first rounds
    to the nearest bfloat16, ties to even, as torch's float32 -> bfloat16 cast does), or both
    empty without per-read noise; ``z_read`` / ``z_conv
    [G, B, O]`` standard normals (empty when unused); index k of these is the global tile
    k0 + k.  ``coef [6, T, O]`` float64 per tile column (all T tiles), from the ADC full scale
    ``bound``, gain error ``gain``, offset ``offset`` (LSB), column weight scale ``colscale``
    and L levels: ``[(1 + gain) L / bound, offset, bound colscale / L, 1 / bound, 1 + gain,
    bound colscale]``.  Per (k, b, o) (k the global tile index):

    val = part + sqrt(var) z_read (per-read noise of the column, a sum of independent Gaussians,
    exact in distribution; sqrt in float32 for var16, in float64 for var);
    linear plan: w = val coef0 + coef1 (= u L + offset);
    otherwise: u = coef4 f(val coef3); not ideal: w = u L + offset + noise_lsb z_conv;
    not ideal: sat[b, k, o] |= |w| > L, code = clip(rint(w), -L, L) + inl[code + L] (LSB),
    acc[b, o] += code coef2; ideal: acc[b, o] += u coef5.
    acc ``[B, O]`` float64 carries the sum over the tiles k in order across the groups (the caller
    zeroes it before a stream's first group); with ``finish`` (a stream's last group):
    y[b, o] += sign rowscale[b] acc[b, o].  ``sat [B, T, O]`` is indexed by the global tile.
    """
    n_t, n_b, n_out = part.shape
    has_var = var.shape[0] > 0
    has_v16 = var16.shape[0] > 0
    v16_wide = var16.itemsize == 4
    ideal = adc.ideal
    levels = adc.levels
    nl_code = adc.nl_code
    nl_spec = adc.nl_spec
    inl = adc.inl
    noise_lsb = adc.noise_lsb
    has_inl = inl.shape[0] > 0
    L = np.float64(levels)
    linear = adc.linear
    sat_row0 = np.zeros(n_out, np.bool_)  # stands in for sat[b, k] when no mask is wanted (unused)
    for b in prange(n_b):
        a = acc[b]
        w = np.empty(n_out, np.float64)  # val, then u L (+ offset) of the row: flat loops that vectorise
        vbits = np.empty(n_out if has_v16 else 0, np.uint32)
        vf = vbits.view(np.float32)
        for k in range(n_t):
            kk = k0 + k
            if has_v16:
                h = var16[k, b]
                if v16_wide:  # float32 bits: rounded to nearest even bfloat16 here, as torch's cast
                    for o in range(n_out):
                        u = np.uint32(h[o])
                        vbits[o] = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
                else:
                    for o in range(n_out):
                        vbits[o] = np.uint32(h[o]) << np.uint32(16)
            if linear:
                # the common case in one loop per row (:func:`_convert_linear`, with per-read
                # noise :func:`_convert_linear_noisy`): same arithmetic as the general path below
                p = part[k, b]
                c0 = coef[0, kk]
                c1 = coef[1, kk]
                c2 = coef[2, kk]
                s = sat[b, kk] if want_sat else sat_row0
                if has_v16:
                    _convert_linear_noisy(p, vf, z_read[k, b], False, c0, c1, c2, L, a, s, want_sat)
                elif has_var:
                    _convert_linear_noisy(p, var[k, b], z_read[k, b], True, c0, c1, c2, L, a, s, want_sat)
                else:  # no per-read noise: straight from the partial sums
                    _convert_linear(p, c0, c1, c2, L, a, s, want_sat)
                continue
            if has_v16:
                for o in range(n_out):
                    sd = np.sqrt(max(vf[o], np.float32(0.0)))
                    w[o] = np.float64(part[k, b, o]) + np.float64(sd) * np.float64(z_read[k, b, o])
            elif has_var:
                for o in range(n_out):
                    sd = math.sqrt(max(np.float64(var[k, b, o]), 0.0))
                    w[o] = np.float64(part[k, b, o]) + sd * np.float64(z_read[k, b, o])
            else:
                for o in range(n_out):
                    w[o] = np.float64(part[k, b, o])
            for o in range(n_out):
                u = w[o] * coef[3, kk, o]
                if nl_code != NL_NONE:
                    u = _nl(nl_code, nl_spec, u)
                u = coef[4, kk, o] * u
                if not ideal:
                    u = u * L + coef[1, kk, o]
                    if noise_lsb > 0.0:
                        u = u + noise_lsb * np.float64(z_conv[k, b, o])
                w[o] = u
            if ideal:
                for o in range(n_out):
                    a[o] += w[o] * coef[5, kk, o]
                continue
            if want_sat:
                s = sat[b, kk]
                for o in range(n_out):
                    s[o] = s[o] | (abs(w[o]) > L)
            if has_inl:
                for o in range(n_out):
                    c = min(max(np.rint(w[o]), -L), L)
                    a[o] += (c + inl[int(c) + levels]) * coef[2, kk, o]
            else:
                for o in range(n_out):
                    a[o] += min(max(np.rint(w[o]), -L), L) * coef[2, kk, o]
        if finish:
            rs = rowscale[b] * sign
            for o in range(n_out):
                y[b, o] += a[o] * rs


@njit(cache=True, parallel=MVM_PARALLEL)
def row_absmax_bits(xbits, mask, seg, out):
    """out[b, k] = max_j (xbits[b, j] & mask) over row b's segment k (k seg <= j < (k + 1) seg):
    the bit pattern of max |x[b, j]| over it (exact).

    xbits is a C-contiguous float array viewed as unsigned integers of its width (uint32 for
    float32, uint64 for float64) and mask clears the sign bit: |x| ordered as floats equals its
    bits ordered as integers, and NaN/Inf have the largest patterns (>= the bits of +Inf), so
    one integer max per segment gives the DAC's dynamic bound and the finiteness check
    (``seg`` = the row length, ``out [B, 1]``) or the weight scale of each tile column
    (``seg`` = the tile's rows, ``out [out, n_in_tiles]``).
    """
    n_b, n = xbits.shape
    n_k = out.shape[1]
    for b in prange(n_b):
        row = xbits[b]
        for k in range(n_k):
            r = row[k * seg : min((k + 1) * seg, n)]
            m = mask ^ mask
            for j in range(r.shape[0]):
                m = max(m, r[j] & mask)
            out[b, k] = m


# single-threaded copies (see :func:`cimsim.kernels._jit.serial_copy`)
dac_convert_serial = serial_copy(dac_convert)
adc_tiles_serial = serial_copy(adc_tiles)
row_absmax_bits_serial = serial_copy(row_absmax_bits)
