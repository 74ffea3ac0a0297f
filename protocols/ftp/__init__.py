"""FTP: the server (:mod:`protocols.ftp.server`), its sans-I/O command layer and
filesystems, and the client (:mod:`protocols.ftp.client`)."""

from .client import FTPClient, FTPCommandError, FTPEntry, FTPError, connectFTP
from .commands import CommandError, format_reply, parse_command
from .filesystem import FileInfo, IFilesystem, LocalFilesystem
from .server import FTP, FTPFactory
from .users import FTPAvatar, UsersFile

__all__ = [
    "FTP",
    "CommandError",
    "FTPAvatar",
    "FTPClient",
    "FTPCommandError",
    "FTPEntry",
    "FTPError",
    "FTPFactory",
    "FileInfo",
    "IFilesystem",
    "LocalFilesystem",
    "UsersFile",
    "connectFTP",
    "format_reply",
    "parse_command",
]
