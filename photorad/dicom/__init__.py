"""DICOM bridge: de-identification, Secondary Capture export and sending to a PACS.

Submodules (imported lazily; they need the ``dicom`` extra):

* :mod:`photorad.dicom.deid` — PS3.15 Annex E basic-profile de-identification, photo metadata
  stripping, per-file JSON report;
* :mod:`photorad.dicom.export` — float32 grey image → Secondary Capture (highdicom);
* :mod:`photorad.dicom.send` — STOW-RS and C-STORE with retries and verification.
"""

from __future__ import annotations
