"""E-certification of copies from originals (spec e-certification.md): books, stamp, certify, verify."""
