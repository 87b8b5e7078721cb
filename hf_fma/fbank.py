"""AST's log-mel fbank for whole batches in torch (`BatchedFbank`), with the pooling and MFCC of
`FmaASTFeatureExtractor`, and the AudioSet normalisation constants it defaults to."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from transformers.audio_utils import mel_filter_bank

from hf_fma.geometry import FRAME_LENGTH, HOP_LENGTH, SAMPLING_RATE, num_frames

# AudioSet statistics of the AST authors: ASTFeatureExtractor's defaults, right for AudioSet checkpoints.
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974
# What every ASTFeatureExtractor with AST's 128 Kaldi mel bins warns when it is built: its lowest filter is
# empty at 16 kHz and 512 FFT points. That is AST's standard set-up, the one its models were trained on, and
# nothing a user can act on: the commands that build extractors ignore it (warnings' `message` pattern).
EMPTY_MEL_FILTER_WARNING = "At least one mel filter has all zero values"


class BatchedFbank(torch.nn.Module):
    """`ASTFeatureExtractor` for batches in torch: (batch, samples) -> (batch, frames, mel_bins).

    Same steps as the extractor's numpy path (Kaldi fbank): 25 ms frames every 10 ms (400/160 samples,
    no edge padding), per-frame DC removal, pre-emphasis 0.97, symmetric Hann window, 512-point power
    spectrum, Kaldi mel filters from 20 Hz, natural log floored at float32 epsilon; then padding with
    zeros or truncation to `max_length` frames, `(x - mean) / (2 * std)`, and the average pooling of
    `FmaASTFeatureExtractor` (`frequency_downscale` x `time_downscale`), then its MFCC (`num_mfcc`,
    `mfcc_delta_order`).

    Computes in `dtype`: float32 by default (within 1e-3 of the extractor on real music and on synthetic
    tones, and what a GPU wants); float64 matches it to 1e-6. Device-agnostic: `.to("cuda")` and pass
    CUDA waveforms.

    >>> fbank = BatchedFbank.from_feature_extractor(ASTFeatureExtractor(max_length=500))
    >>> fbank(torch.zeros(64, 80000)).shape
    torch.Size([64, 500, 128])
    """

    frame_length = FRAME_LENGTH
    hop_length = HOP_LENGTH
    fft_length = 512
    preemphasis = 0.97
    mel_floor = 1.192092955078125e-07  # float32 epsilon, as in ASTFeatureExtractor
    # On CPU the batch goes through the whole chain (FFT to pooling) this many frames at a time: chunks
    # that stay in cache avoid the page faults of batch-sized passes, so the per-clip cost stays flat as
    # the batch grows.
    cpu_chunk_frames = 1024

    def __init__(
        self,
        num_mel_bins: int = 128,
        max_length: int = 1024,
        sampling_rate: int = SAMPLING_RATE,
        do_normalize: bool = True,
        mean: float = AUDIOSET_MEAN,
        std: float = AUDIOSET_STD,
        frequency_downscale: int = 1,
        time_downscale: int = 1,
        num_mfcc: int = 0,
        mfcc_delta_order: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.dtype = dtype
        self.num_mel_bins = num_mel_bins
        self.max_length = max_length
        self.sampling_rate = sampling_rate
        self.do_normalize = do_normalize
        self.mean = mean
        self.std = std
        self.frequency_downscale = frequency_downscale
        self.time_downscale = time_downscale
        self.num_mfcc = num_mfcc
        self.mfcc_delta_order = mfcc_delta_order
        with warnings.catch_warnings():
            # 128 Kaldi bins leave the lowest filters empty at 512 points; ASTFeatureExtractor warns already.
            warnings.simplefilter("ignore", UserWarning)
            # The extractor's own filter bank call (numpy path): same arguments, same filters.
            mel_filters = mel_filter_bank(
                num_frequency_bins=self.fft_length // 2 + 1,
                num_mel_filters=num_mel_bins,
                min_frequency=20,
                max_frequency=sampling_rate // 2,
                sampling_rate=sampling_rate,
                norm=None,
                mel_scale="kaldi",
                triangularize_in_mel_space=True,
            )
        window = np.hanning(self.frame_length)  # symmetric Hann, window_function(400, "hann", periodic=False)
        # float64 buffers, cast to `dtype` when used: float64 computation keeps the filters' precision
        self.register_buffer("window", torch.tensor(window), persistent=False)
        self.register_buffer("mel_filters", torch.tensor(mel_filters), persistent=False)
        self._sparse_mel_filters: dict[tuple, torch.Tensor] = {}

    @classmethod
    def from_feature_extractor(cls, feature_extractor, dtype: torch.dtype = torch.float32) -> BatchedFbank:
        """The fbank of an `ASTFeatureExtractor` or `FmaASTFeatureExtractor` (its config, not its code)."""
        return cls(
            dtype=dtype,
            num_mel_bins=feature_extractor.num_mel_bins,
            max_length=feature_extractor.max_length,
            sampling_rate=feature_extractor.sampling_rate,
            do_normalize=feature_extractor.do_normalize,
            mean=feature_extractor.mean,
            std=feature_extractor.std,
            frequency_downscale=getattr(feature_extractor, "frequency_downscale", 1),
            time_downscale=getattr(feature_extractor, "time_downscale", 1),
            num_mfcc=getattr(feature_extractor, "num_mfcc", 0),
            mfcc_delta_order=getattr(feature_extractor, "mfcc_delta_order", 0),
        )

    def extra_repr(self) -> str:
        return (
            f"num_mel_bins={self.num_mel_bins}, max_length={self.max_length}, do_normalize={self.do_normalize}, "
            f"mean={self.mean}, std={self.std}, downscale={self.time_downscale}x{self.frequency_downscale}, "
            f"num_mfcc={self.num_mfcc}, mfcc_delta_order={self.mfcc_delta_order}"
        )

    @property
    def padding_value(self) -> float:
        """What padded (or masked) frames hold after normalisation: the normalised zero."""
        return self.normalize_value(0.0)

    def normalize_value(self, value):
        if not self.do_normalize:
            return value
        if isinstance(value, torch.Tensor):  # one new tensor, not two
            return torch.sub(value, self.mean).div_(self.std * 2)
        return (value - self.mean) / (self.std * 2)

    num_frames = staticmethod(num_frames)  # frames the extractor makes of `lengths` samples, element-wise

    def log_mel(
        self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Raw log-mel frames: (batch, samples) -> (batch, frames, num_mel_bins), before padding to
        max_length. With `lengths` (samples of each waveform, the rest being padding), frames that are not
        entirely inside a waveform are zeros, as the extractor pads a shorter clip's fbank; they are not
        computed. With `out` (batch, frames', num_mel_bins), the frames are written there instead: the
        first frames' only, zeros after the waveforms' ends."""
        dtype = self.dtype
        waveforms = waveforms.to(self.window.device, torch.float32).to(dtype)  # the extractor casts to float32
        if waveforms.shape[-1] < self.frame_length:
            waveforms = F.pad(waveforms, (0, self.frame_length - waveforms.shape[-1]))
        batch, total_frames = waveforms.shape[0], int(self.num_frames(torch.tensor(waveforms.shape[-1])))
        if out is None:
            out = torch.empty(batch, total_frames, self.num_mel_bins, dtype=dtype, device=waveforms.device)
        lengths = torch.full((batch,), waveforms.shape[-1]) if lengths is None else torch.as_tensor(lengths)
        valid = self.num_frames(lengths.to(out.device)).clamp_max(min(total_frames, out.shape[1]))  # (batch,)
        # One pass over the rows given: `forward` hands them over a cache-sized chunk at a time.
        frames = int(valid.max())  # frames that hold audio in some row
        out[:, frames:] = 0.0
        if frames > 0:
            samples = self.frame_length + (frames - 1) * self.hop_length
            out[:, :frames] = self._log_mel_frames(waveforms[:, :samples])
        if bool((valid < valid.max()).any()):  # rows ending before others: zero their tails
            padding = torch.arange(out.shape[1], device=out.device) >= valid[:, None]  # (batch, frames)
            out.masked_fill_(padding[..., None], 0.0)
        return out

    def _chunks(self, batch: int, frames: int, device: torch.device) -> list[slice]:
        """Row slices of about `cpu_chunk_frames` frames on CPU; the whole batch elsewhere."""
        step = max(1, self.cpu_chunk_frames // max(frames, 1)) if device.type == "cpu" else batch
        return [slice(first, first + step) for first in range(0, batch, step)]

    def _log_mel_frames(self, waveforms: torch.Tensor) -> torch.Tensor:
        frames = waveforms.unfold(-1, self.frame_length, self.hop_length)  # (batch, frames, 400), a view
        window = self.window.to(frames.dtype)
        # Per frame: y = window * preemphasis(frame - mean(frame)), with preemphasis(x)[i] = x[i] - 0.97 x[i-1]
        # and x[0] * (1 - 0.97) at i = 0. Expanded, y[i] = w[i] (x[i] - 0.97 x[i-1]) - 0.03 mean w[i] for
        # i >= 1, and y[0] = 0 since the symmetric Hann window has w[0] = 0: three passes over the frames,
        # written straight into the zero-padded FFT buffer.
        buffer = frames.new_zeros(*frames.shape[:-1], self.fft_length)  # (batch, frames, 512)
        windowed = buffer[..., : self.frame_length]
        torch.mul(frames, window, out=windowed)
        windowed[..., 1:].addcmul_(frames[..., :-1], window[1:], value=-self.preemphasis)
        windowed.addcmul_(frames.mean(dim=-1, keepdim=True), window, value=-(1 - self.preemphasis))
        spectrum = torch.fft.rfft(buffer)  # (batch, frames, 257)
        power = spectrum.real.square().addcmul_(spectrum.imag, spectrum.imag)
        mel = self._apply_mel_filters(power)  # (batch, frames, num_mel_bins)
        return mel.clamp_min_(self.mel_floor).log_()

    def _apply_mel_filters(self, power: torch.Tensor) -> torch.Tensor:
        if power.device.type != "cpu":
            return power @ self.mel_filters.to(power.dtype)
        # On CPU the filters as a sparse matrix (each FFT bin feeds at most two filters) cost a third of
        # the dense product.
        key = (power.device, power.dtype)
        if key not in self._sparse_mel_filters:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                self._sparse_mel_filters[key] = self.mel_filters.T.contiguous().to(power.dtype).to_sparse_csr()
        rows = power.reshape(-1, power.shape[-1])  # (batch * frames, 257)
        mel = (self._sparse_mel_filters[key] @ rows.T).T  # (batch * frames, num_mel_bins)
        return mel.reshape(*power.shape[:-1], self.num_mel_bins)

    def pad_and_normalize(self, fbank: torch.Tensor) -> torch.Tensor:
        """(batch, frames, mel) raw log-mel -> (batch, max_length, mel): zero-padded or truncated, then
        normalised, exactly in the extractor's order."""
        missing = self.max_length - fbank.shape[1]
        fbank = F.pad(fbank, (0, 0, 0, missing)) if missing > 0 else fbank[:, : self.max_length]
        return self.normalize_value(fbank.float())

    def downscale(self, features: torch.Tensor) -> torch.Tensor:
        """FmaASTFeatureExtractor's average pooling (the remote-code file must stand alone, hence this
        one-line twin): (batch, frames, mel) -> (batch, frames // time_downscale, mel // frequency_downscale)."""
        if self.frequency_downscale == 1 and self.time_downscale == 1:
            return features
        kernel = (self.time_downscale, self.frequency_downscale)
        return F.avg_pool2d(features.unsqueeze(1), kernel_size=kernel).squeeze(1)  # (batch, frames', mel')

    def cepstra(self, features: torch.Tensor, with_deltas: bool = True) -> torch.Tensor:
        """FmaASTFeatureExtractor's MFCC of the pooled features when `num_mfcc` asks for them:
        (batch, frames, mel) -> (batch, frames, num_mfcc * (1 + mfcc_delta_order)); without `with_deltas`,
        the coefficients alone (batch, frames, num_mfcc), for `forward` to append the deltas once per batch
        (per chunk of rows, the small steps' overhead would outweigh their arithmetic)."""
        if not self.num_mfcc:
            return features
        # The extractor file's own functions, the one definition of the MFCC (that file must run without
        # hf_fma, so the math lives there); imported here so that importing this module imports no model code.
        from hf_fma.models.feature_extraction_fma_ast import append_deltas, cepstral_coefficients

        coefficients = cepstral_coefficients(features, self.num_mfcc)
        return append_deltas(coefficients, self.mfcc_delta_order) if with_deltas else coefficients

    def forward(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(batch, samples) at `sampling_rate` -> model inputs (batch, frames, mel_bins), float32, chunk by
        chunk of rows, each through the whole chain while it is in cache. `augment` (e.g. SpecAugment) takes
        each chunk's normalised features before pooling and MFCC."""
        batch, device = len(waveforms), self.window.device
        result = None
        for rows in self._chunks(batch, self.max_length, device):
            # (rows, max_length, mel): a buffer small enough to stay in cache through the whole chain
            buffer = torch.empty(len(waveforms[rows]), self.max_length, self.num_mel_bins, dtype=self.dtype, device=device)
            features = self.normalize_value(self.log_mel(waveforms[rows], None if lengths is None else lengths[rows], out=buffer).float())
            features = self.downscale(features if augment is None else augment(features))
            features = self.cepstra(features, with_deltas=False)
            if result is None:
                result = features.new_empty(batch, *features.shape[1:])
            result[rows] = features
        if self.num_mfcc and self.mfcc_delta_order:
            from hf_fma.models.feature_extraction_fma_ast import append_deltas  # see cepstra

            result = append_deltas(result, self.mfcc_delta_order)
        return result


__all__ = ["AUDIOSET_MEAN", "AUDIOSET_STD", "EMPTY_MEL_FILTER_WARNING", "BatchedFbank"]
