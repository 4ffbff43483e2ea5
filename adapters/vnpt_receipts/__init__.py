"""VNPT e-receipt adapter (biên lai điện tử over SOAP, spec ``e-receipts.md``)."""
