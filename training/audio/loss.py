"""Multi-resolution spectral loss (DDSP section 4.2): L1 on linear and log magnitudes."""

from __future__ import annotations

import torch

FFT_SIZES = (1024, 512, 256, 128)


def spectral_loss(predicted: torch.Tensor, target: torch.Tensor,
                  fft_sizes: tuple[int, ...] = FFT_SIZES) -> torch.Tensor:
    """Sum over FFT sizes of mean |S - S'| + mean |log S - log S'|, hop a quarter window."""
    total = predicted.new_zeros(())
    for size in fft_sizes:
        window = torch.hann_window(size)
        spectra = [torch.stft(x, size, hop_length=size // 4, window=window,
                              return_complex=True).abs() for x in (predicted, target)]
        total = total + (spectra[0] - spectra[1]).abs().mean()
        total = total + (torch.log(spectra[0] + 1e-7) - torch.log(spectra[1] + 1e-7)).abs().mean()
    return total
