"""FTPS on the FTP server: AUTH TLS, PBSZ, PROT and CCC (RFC 4217, RFC 2228).

A mixin of :class:`protocols.ftp.server.FTP`, like ``_transfer.TransferCommands``.

Explicit FTPS: the client sends ``AUTH TLS`` (``AUTH SSL`` is taken as a
synonym, as most servers do), gets 234, and the control connection turns to
TLS (the server's side of the handshake) through ``transport.startTLS``.
``PBSZ 0`` then ``PROT P`` make every later data connection, passive or
active, TLS too, the client starting the handshake (RFC 4217 7); ``PROT C``
goes back to clear data connections. Implicit FTPS is the same server on an
``ssl:`` endpoint: the control connection is TLS from its first byte, so the
session starts as if ``AUTH TLS``, ``PBSZ 0`` and ``PROT P`` had been sent
(the data connections are then TLS unless the client sends ``PROT C``).

Whether the control connection is secure is read from the transport itself
(a ``reactor.tls.TLSConnection``), never remembered apart from it. The
factory's ``requireTLS`` refuses ``USER``/``PASS`` on a clear control
connection (530), and its ``requireProtectedData`` refuses transfers under
``PROT C`` (521, RFC 4217 9). ``CCC`` is always refused: going back to a
clear control connection would expose the rest of the session.
"""

from __future__ import annotations

import logging
from typing import Any

from reactor.tls import TLSConnection

from .commands import CommandError, LineSplitter

__all__ = ["DATA_COMMANDS", "TLSCommands"]

log = logging.getLogger("protocols.ftp")

#: The commands that open a data connection (the ones ``requireProtectedData`` guards).
DATA_COMMANDS = frozenset({"LIST", "NLST", "MLSD", "RETR", "STOR", "STOU", "APPE"})
# RFC 4217 4: TLS; RFC 2228's drafts used SSL, TLS-C and TLS-P for the same thing.
_MECHANISMS = frozenset({"TLS", "SSL", "TLS-C", "TLS-P"})
_LOGIN_COMMANDS = frozenset({"USER", "PASS"})


class TLSCommands:
    """The FTPS commands and checks, mixed into the FTP protocol (which provides the rest).

    Attributes:
        tlsByAuth: The control connection was secured by ``AUTH`` (explicit
            FTPS), not from its first byte.
        pbszSeen: ``PBSZ`` was accepted.
        protection: The data protection level the client asked for, ``"P"``
            or ``"C"``; None until ``PROT``.
    """

    factory: Any
    transport: Any
    queue: list[bytes | object]
    splitter: LineSplitter

    # Class-level defaults, so that the protocol's __init__ needs no TLS lines.
    tlsByAuth = False
    pbszSeen = False
    protection: str | None = None

    def reply(self, code: int, text: str) -> None:
        """Send a reply (the protocol implements it)."""
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        """Whether the control connection is TLS (after AUTH, or implicit FTPS)."""
        return isinstance(self.transport, TLSConnection)

    @property
    def implicitTLS(self) -> bool:
        """Whether the control connection has been TLS from its first byte."""
        return self.secure and not self.tlsByAuth

    @property
    def dataProtection(self) -> str:
        """The level new data connections get: ``"P"`` (TLS) or ``"C"`` (clear).

        Implicit FTPS starts at P (clients of port 990 expect it, and send
        no PROT); explicit FTPS at C, until ``PROT P`` (RFC 4217 9).
        """
        if self.protection is not None:
            return self.protection
        return "P" if self.implicitTLS else "C"

    def _dataContext(self) -> Any:
        """The server ``ssl.SSLContext`` for new data connections, or None for clear ones."""
        if not self.secure or self.dataProtection != "P":
            return None
        context = self.factory.tlsContext
        if context is None:
            # Implicit FTPS: the certificate is the ssl: endpoint's one.
            context = self.transport.getHandle().context
        if getattr(context, "num_tickets", 0):
            # No TLS 1.3 session tickets: a client that only writes (an upload)
            # never reads them, and closing a socket with unread bytes sends a
            # reset, which makes the kernel drop the end of the upload still
            # waiting to be read here. (This turns them off for the context.)
            context.num_tickets = 0
        return context

    def _tlsFeatures(self) -> list[str]:
        """What FEAT adds for FTPS (RFC 4217 6)."""
        features = ["PBSZ", "PROT"] if self.secure or self.factory.tlsContext else []
        if self.factory.tlsContext is not None and not self.implicitTLS:
            features.append("AUTH TLS")
        return features

    def _checkSecurity(self, name: str) -> None:
        """Apply the factory's TLS policy to command ``name`` before it runs.

        Raises:
            CommandError: 530 for a login on a clear control connection
                under ``requireTLS``; 521 for a transfer under ``PROT C``
                with ``requireProtectedData``.
        """
        if name in _LOGIN_COMMANDS and self.factory.requireTLS and not self.secure:
            raise CommandError(530, "TLS required: send AUTH TLS before logging in.")
        if (name in DATA_COMMANDS and self.factory.requireProtectedData
                and self.dataProtection != "P"):
            raise CommandError(521, "Data connection cannot be opened with this PROT "
                                    "setting: send PBSZ 0 and PROT P first.")

    # -- the commands ---------------------------------------------------------------

    def ftp_AUTH(self, arg: str) -> None:
        """Turn the control connection to TLS (explicit FTPS, RFC 4217 4)."""
        mechanism = arg.strip().upper()
        if self.secure:
            raise CommandError(503, "Already using TLS.")
        context = self.factory.tlsContext
        if context is None:
            raise CommandError(502, "AUTH is not available: no TLS certificate is "
                                    "configured.")
        if mechanism not in _MECHANISMS:
            raise CommandError(504, "Unknown security mechanism: use AUTH TLS.")
        self.reply(234, f"AUTH {mechanism} successful, starting the TLS handshake.")
        # Whatever the client pipelined behind AUTH came in the clear: it must
        # not run as if it had come over TLS (the STARTTLS command injection
        # of CVE-2011-0411). A well-behaved client sent nothing, waiting for 234.
        if self.queue:
            log.warning("FTP: dropping %d command line(s) sent behind AUTH in the clear",
                        len(self.queue))
        self.queue.clear()
        self.splitter = LineSplitter()
        self.transport = self.transport.startTLS(context, server_side=True)
        self.tlsByAuth = True
        self.pbszSeen = False
        self.protection = None

    def ftp_PBSZ(self, arg: str) -> None:
        """Protection buffer size: meaningless with TLS, so always 0 (RFC 4217 8)."""
        if not self.secure:
            raise CommandError(503, "PBSZ needs a secure control connection: AUTH TLS first.")
        try:
            int(arg.strip())
        except ValueError:
            raise CommandError(501, "PBSZ needs a decimal size (0).") from None
        self.pbszSeen = True
        # A client asking for another size is told the one in force.
        self.reply(200, "PBSZ=0")

    def ftp_PROT(self, arg: str) -> None:
        """Data protection level: P (TLS) or C (clear) (RFC 4217 9)."""
        level = arg.strip().upper()
        if not self.secure:
            raise CommandError(503, "PROT needs a secure control connection: AUTH TLS first.")
        if not self.pbszSeen and not self.implicitTLS:
            raise CommandError(503, "PROT needs PBSZ first (send PBSZ 0).")
        if level in ("S", "E"):
            raise CommandError(536, f"PROT {level} is not supported with TLS: use P or C.")
        if level not in ("P", "C"):
            raise CommandError(504, "Unknown protection level: use P or C.")
        self.protection = level
        what = "Private" if level == "P" else "Clear"
        self.reply(200, f"Protection level set to {what} ({level}).")

    def ftp_CCC(self, arg: str) -> None:
        """Refused: a clear control connection would expose the rest of the session."""
        raise CommandError(534, "CCC refused: the control connection stays encrypted.")
