"""Numbers as the reports write them: PSNR at the stored cap reads as identical outputs, not as 200 dB."""

from __future__ import annotations

import math

from orchestrator.report.units import db, mb, ms
from orchestrator.serialize import PSNR_CAP_DB


def test_psnr_at_the_cap_or_infinite_reads_as_identical():
    assert db(PSNR_CAP_DB) == db(math.inf) == "∞ dB (identical)"
    assert db(42.04) == "42.0 dB" and db(None) == "–"


def test_sizes_and_times_keep_sensible_precision():
    assert mb(2310.4) == "2,310 MB" and mb(3.14159) == "3.1 MB"
    assert ms(1234.5) == "1,234 ms" and ms(12.345) == "12.3 ms" and ms(1.2345) == "1.23 ms"
