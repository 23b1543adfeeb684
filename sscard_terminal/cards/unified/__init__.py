"""The national unified reader interface (the HIS string format), as HIS software parses it.

- :mod:`.basic_info`: the ``iReadCardBas`` string (fixed field positions, trailing pipe)
  and the interface's return codes (:class:`UnifiedCode`, :func:`unified_code_for`);
- :mod:`.hsm_steps`: the two-step HSM read ``iReadCardBas_HSM_Step1`` / ``_Step2``.

Import from this package; the modules are its two halves.
"""

from .basic_info import (
    BASIC_INFO_FIELDS,
    UnifiedCode,
    code_for_sw,
    format_basic_info,
    unified_code_for,
    unified_date,
)
from .hsm_steps import (
    TWO_STEP_MODULE,
    HsmTwoStepSession,
    format_step1,
    parse_step2_key,
    unified_auth_code_for,
)

__all__ = [
    "BASIC_INFO_FIELDS",
    "TWO_STEP_MODULE",
    "HsmTwoStepSession",
    "UnifiedCode",
    "code_for_sw",
    "format_basic_info",
    "format_step1",
    "parse_step2_key",
    "unified_auth_code_for",
    "unified_code_for",
    "unified_date",
]
