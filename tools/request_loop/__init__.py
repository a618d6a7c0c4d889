"""Send HTTPS requests in a bounded loop and count the failures.

The Molecule tls scenario uses it to show that a certificate rotation drops no
request. It needs only the standard library, so any Python 3.11 on the control
node runs it.
"""
